//! `Host::load`: read the model under a root directory.

use crate::error::{Error, Result};
use crate::facts::ConfigFacts;
use crate::model::*;
use crate::sysfs::{Dir, Kind, Root, Trace, BIG_TEXT_LIMIT, TEXT_LIMIT};
use passthru_pci_ids::{Bdf, ClassCode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest config space (PCIe extended configuration space).
const CONFIG_LIMIT: usize = 4096;
/// At most this many `resource` lines are kept.
const MAX_RESOURCES: usize = 64;
/// The Resizable BAR attributes of BARs 0-5.
const RESIZE_ATTRS: [&str; 6] = [
    "resource0_resize",
    "resource1_resize",
    "resource2_resize",
    "resource3_resize",
    "resource4_resize",
    "resource5_resize",
];

pub(crate) struct Loader {
    pub(crate) fs: Root,
    pub(crate) notes: Vec<Note>,
}

/// Where a fact is read: a path relative to the root, or a name in an opened
/// directory (fewer system calls, see [`Dir`]). Both read the same file and name
/// the same path in notes.
#[derive(Clone, Copy)]
pub(crate) enum At<'a> {
    Path(&'a Path),
    In(&'a Dir, &'a str),
}

impl<'a> From<&'a Path> for At<'a> {
    fn from(p: &'a Path) -> At<'a> {
        At::Path(p)
    }
}

impl<'a> From<&'a PathBuf> for At<'a> {
    fn from(p: &'a PathBuf) -> At<'a> {
        At::Path(p)
    }
}

impl At<'_> {
    /// The path (relative to the root) for notes.
    fn path(self) -> PathBuf {
        match self {
            At::Path(p) => p.to_path_buf(),
            At::In(d, n) => d.path().join(n),
        }
    }
}

/// `s` without surrounding white space, reusing its buffer when nothing is cut.
fn trim_owned(s: String) -> String {
    let t = s.trim();
    if t.len() == s.len() {
        s
    } else {
        t.to_string()
    }
}

impl Loader {
    pub(crate) fn note(&mut self, path: impl Into<PathBuf>, message: impl Into<String>) {
        self.notes.push(Note {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A note for a failed read at `at`: the error and its sources.
    fn note_err(&mut self, at: At<'_>, e: &Error) {
        let msg = error_chain(e);
        self.note(at.path(), msg);
    }

    pub(crate) fn read_bytes<'a>(
        &mut self,
        at: impl Into<At<'a>>,
        limit: usize,
    ) -> Option<Vec<u8>> {
        let at = at.into();
        let r = match at {
            At::Path(p) => self.fs.read_bytes_bounded(p, limit, false),
            At::In(d, n) => self.fs.read_bytes_in_bounded(d, n, limit, false),
        };
        r.unwrap_or_else(|e| {
            self.note_err(at, &e);
            None
        })
    }

    /// A text fact: absent when missing; unreadable or garbage gives a note and `None`.
    pub(crate) fn text<'a>(&mut self, at: impl Into<At<'a>>, limit: usize) -> Option<String> {
        let at = at.into();
        let r = match at {
            At::Path(p) => self.fs.read_text(p, limit),
            At::In(d, n) => self.fs.read_text_in(d, n, limit),
        };
        r.unwrap_or_else(|e| {
            self.note_err(at, &e);
            None
        })
    }

    pub(crate) fn trimmed<'a>(&mut self, at: impl Into<At<'a>>) -> Option<String> {
        self.text(at, TEXT_LIMIT).map(trim_owned)
    }

    pub(crate) fn parsed<'a, T>(
        &mut self,
        at: impl Into<At<'a>>,
        expected: &'static str,
        f: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let at = at.into();
        let s = self.trimmed(at)?;
        match f(&s) {
            Some(v) => Some(v),
            None => {
                let path = at.path();
                let e = Error::Garbage {
                    path: path.clone(),
                    content: s.chars().take(64).collect(),
                    expected,
                };
                self.note(path, e.to_string());
                None
            }
        }
    }

    pub(crate) fn hex<'a>(&mut self, at: impl Into<At<'a>>) -> Option<u32> {
        self.parsed(at, "a hex number like 0x1002", parse_hex)
    }

    pub(crate) fn link_name<'a>(&mut self, at: impl Into<At<'a>>) -> Option<String> {
        let at = at.into();
        let r = match at {
            At::Path(p) => self.fs.read_link(p),
            At::In(d, n) => self.fs.read_link_in(d, n),
        };
        match r {
            Ok(Some(t)) => t.file_name().and_then(|n| n.to_str()).map(str::to_string),
            Ok(None) => None,
            Err(e) => {
                self.note_err(at, &e);
                None
            }
        }
    }

    pub(crate) fn exists<'a>(&mut self, at: impl Into<At<'a>>) -> bool {
        let at = at.into();
        let r = match at {
            At::Path(p) => self.fs.kind(p),
            At::In(d, n) => self.fs.kind_in(d, n),
        };
        match r {
            Ok(k) => k.is_some(),
            Err(e) => {
                self.note_err(at, &e);
                false
            }
        }
    }

    pub(crate) fn list(&mut self, rel: &Path) -> Vec<(String, Kind)> {
        match self.fs.list(rel) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                self.note_err(At::Path(rel), &e);
                Vec::new()
            }
        }
    }
}

/// The message of an error with its sources, `: `-joined.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

fn parse_hex(s: &str) -> Option<u32> {
    let d = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if d.is_empty() || d.len() > 8 {
        return None;
    }
    u32::from_str_radix(d, 16).ok()
}

fn parse_bool01(s: &str) -> Option<bool> {
    match s {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

impl Host {
    /// Read the host under `root` (`/` for the live machine, a snapshot or a fixture tree).
    ///
    /// Only a root without `sys/bus/pci/devices` (or an unusable root) is an error;
    /// every other missing, unreadable or garbled attribute becomes an absent fact
    /// and a [`Note`] in [`Host::notes`].
    ///
    /// # Errors
    ///
    /// [`Error::Root`] when `root` cannot be used as a directory, [`Error::NoPciBus`] when it
    /// has no `sys/bus/pci/devices`.
    pub fn load(root: impl AsRef<Path>) -> Result<Host> {
        Host::load_stage(root, Stage::Full)
    }

    /// Read only as much as `stage` needs: [`Stage::Inventory`] is what a listing
    /// prints, with a few system calls per device (`passthru list`).
    ///
    /// # Errors
    /// As [`Host::load`].
    pub fn load_stage(root: impl AsRef<Path>, stage: Stage) -> Result<Host> {
        Ok(load_fs(root.as_ref(), false, stage)?.0)
    }

    /// A device by address.
    pub fn device(&self, bdf: Bdf) -> Option<&Device> {
        self.devices.get(&bdf)
    }

    /// The IOMMU group holding `bdf`.
    pub fn group_of(&self, bdf: Bdf) -> Option<&Group> {
        let id = self.devices.get(&bdf)?.iommu_group?;
        self.groups.get(&id)
    }

    /// The other devices on the same bus as `bdf` (same parent bridge, or same root bus).
    pub fn bus_peers(&self, bdf: Bdf) -> Vec<&Device> {
        let Some(d) = self.device(bdf) else {
            return Vec::new();
        };
        self.scan()
            .filter(|o| {
                o.bdf != bdf
                    && o.root_bus == d.root_bus
                    && o.parent() == d.parent()
                    && o.bdf.bus == d.bdf.bus
            })
            .collect()
    }

    /// Every device below bridge `bdf` (at any depth).
    pub fn below(&self, bdf: Bdf) -> Vec<&Device> {
        self.scan().filter(|o| o.upstream.contains(&bdf)).collect()
    }

    /// The functions of `bdf`'s slot other than `bdf` itself.
    pub fn slot_siblings(&self, bdf: Bdf) -> Vec<&Device> {
        // Addresses order by domain, bus, device, function: a slot is one key range.
        let s = bdf.slot();
        let first = Bdf {
            domain: s.domain,
            bus: s.bus,
            device: s.device,
            function: 0,
        };
        let last = Bdf {
            function: u8::MAX,
            ..first
        };
        self.devices
            .range(first..=last)
            .map(|(_, o)| o)
            .filter(|o| o.bdf != bdf)
            .collect()
    }

    /// Every device, in address order: what a question about all devices walks
    /// (counted in test builds, so tests can pin how often a check walks them all).
    pub(crate) fn scan(&self) -> std::collections::btree_map::Values<'_, Bdf, Device> {
        #[cfg(test)]
        crate::model::SCANS.with(|c| c.set(c.get() + 1));
        self.devices.values()
    }
}

pub(crate) fn load_inner(root: &Path, record: bool) -> Result<(Host, Option<Trace>)> {
    let (host, fs) = load_fs(root, record, Stage::Full)?;
    Ok((host, fs.take_trace()))
}

/// Load, keeping the reader (its trace, and in tests its tally of operations).
pub(crate) fn load_fs(root: &Path, record: bool, stage: Stage) -> Result<(Host, Root)> {
    let fs = Root::with_recorder(root, record)?;
    let mut l = Loader {
        fs,
        notes: Vec::new(),
    };
    let entries = pci_entries(&mut l, root)?;
    let mut devices = BTreeMap::new();
    for (bdf, link, kind) in entries {
        let d = match stage {
            Stage::Inventory => crate::inventory::listed_device(&mut l, bdf, &link, kind),
            Stage::Full => load_device(&mut l, bdf, &link, kind),
        };
        if let Some(d) = d {
            devices.insert(bdf, d);
        }
    }
    let snapshot = l
        .text(Path::new(crate::snapshot::MARKER), TEXT_LIMIT)
        .and_then(|t| crate::snapshot::SnapshotInfo::parse(&t));
    if stage == Stage::Inventory {
        let mut host = inventory_host(&mut l, devices);
        host.snapshot = snapshot;
        return Ok((host, l.fs));
    }

    // IOMMU groups.
    let mut groups = BTreeMap::new();
    for (id, dir) in group_dirs(&mut l) {
        let mut members = Vec::new();
        for (dn, _) in l.list(&dir.join("devices")) {
            match dn.parse::<Bdf>() {
                Ok(b) => members.push(b),
                Err(_) => l.note(dir.join("devices").join(&dn), "not a PCI address: ignored"),
            }
        }
        members.sort();
        let domain_type = l.trimmed(&dir.join("type"));
        let noiommu = group_is_noiommu(&mut l, &dir);
        let reserved_regions = crate::findings_device::load_reserved_regions(&mut l, &dir);
        groups.insert(
            id,
            Group {
                id,
                devices: members,
                domain_type,
                noiommu,
                reserved_regions,
            },
        );
    }
    // A device whose own `iommu_group` link is missing takes the group that lists it.
    for g in groups.values() {
        for b in &g.devices {
            if let Some(d) = devices.get_mut(b) {
                if d.iommu_group.is_none() {
                    d.iommu_group = Some(g.id);
                } else if d.iommu_group != Some(g.id) {
                    l.notes.push(Note {
                        path: d.sysfs_path.join("iommu_group"),
                        message: format!(
                            "links to group {} but sys/kernel/iommu_groups/{} lists the device",
                            d.iommu_group.map_or(0, |g| g.0),
                            g.id
                        ),
                    });
                }
            }
        }
    }

    let iommu = iommu_state(&mut l, groups.values().any(|g| !g.noiommu));

    let cpuinfo = match l
        .fs
        .read_bytes_bounded(Path::new("proc/cpuinfo"), BIG_TEXT_LIMIT, false)
    {
        Ok(b) => b.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(e) => {
            let msg = error_chain(&e);
            l.note("proc/cpuinfo", msg);
            None
        }
    };
    let cpu_vendor = cpuinfo.as_deref().map_or(CpuVendor::Other, cpu_vendor_of);
    let kernel = l.trimmed(Path::new("proc/sys/kernel/osrelease"));
    let cmdline = l.trimmed(Path::new("proc/cmdline"));
    let modules = l.text(Path::new("proc/modules"), BIG_TEXT_LIMIT).map(|t| {
        t.lines()
            .filter_map(|x| x.split_whitespace().next())
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
    let sys_module: Vec<String> = l
        .list(Path::new("sys/module"))
        .into_iter()
        .filter(|(_, k)| *k == Kind::Dir)
        .map(|(n, _)| n)
        .collect();
    let mut vfio_pci_params = BTreeMap::new();
    let pdir = Path::new("sys/module/vfio_pci/parameters");
    for (n, k) in l.list(pdir) {
        if k == Kind::File {
            if let Some(v) = l.trimmed(&pdir.join(&n)) {
                vfio_pci_params.insert(n, v);
            }
        }
    }
    let boot = load_boot(&mut l, kernel.as_deref());
    let chassis_type = l.parsed(
        Path::new("sys/class/dmi/id/chassis_type"),
        "a number",
        |s| s.parse().ok(),
    );
    let acpi_vfct = l.exists(Path::new("sys/firmware/acpi/tables/VFCT"));
    let platform = crate::load_host::load_platform(
        &mut l,
        cpuinfo.as_deref(),
        &devices,
        &groups,
        &iommu.units,
        kernel.as_deref(),
    );

    let host = Host {
        stage: Stage::Full,
        devices,
        groups,
        iommu,
        cpu_vendor,
        kernel,
        cmdline,
        modules,
        sys_module,
        vfio_pci_params,
        boot,
        chassis_type,
        acpi_vfct,
        platform,
        notes: l.notes,
        snapshot,
    };
    Ok((host, l.fs))
}

/// The inventory stage's host: groups from the devices' links, the IOMMU state.
fn inventory_host(l: &mut Loader, devices: BTreeMap<Bdf, Device>) -> Host {
    let mut groups = BTreeMap::new();
    for (id, dir) in group_dirs(l) {
        let noiommu = group_is_noiommu(l, &dir);
        groups.insert(
            id,
            Group {
                id,
                devices: Vec::new(),
                domain_type: None,
                noiommu,
                reserved_regions: None,
            },
        );
    }
    // Devices are visited in address order, so each group's list is sorted.
    for d in devices.values() {
        if let Some(g) = d.iommu_group.and_then(|g| groups.get_mut(&g)) {
            g.devices.push(d.bdf);
        }
    }
    let iommu = iommu_state(l, groups.values().any(|g| !g.noiommu));
    Host {
        stage: Stage::Inventory,
        devices,
        groups,
        iommu,
        cpu_vendor: CpuVendor::Other,
        kernel: None,
        cmdline: None,
        modules: None,
        sys_module: Vec::new(),
        vfio_pci_params: BTreeMap::new(),
        boot: BootSetup::default(),
        chassis_type: None,
        acpi_vfct: false,
        platform: Default::default(),
        notes: std::mem::take(&mut l.notes),
        snapshot: None,
    }
}

/// The entries of `sys/bus/pci/devices` that are PCI addresses, with their
/// paths and kinds (a note for any other name). No such directory: an error.
pub(crate) fn pci_entries(l: &mut Loader, root: &Path) -> Result<Vec<(Bdf, PathBuf, Kind)>> {
    let bus_dir = Path::new("sys/bus/pci/devices");
    let Some(entries) = l.fs.list(bus_dir)? else {
        return Err(Error::NoPciBus {
            path: root.join(bus_dir),
        });
    };
    let mut out = Vec::with_capacity(entries.len());
    for (name, kind) in entries {
        match name.parse::<Bdf>() {
            Ok(bdf) => out.push((bdf, bus_dir.join(&name), kind)),
            Err(_) => l.note(bus_dir.join(&name), "not a PCI address: ignored"),
        }
    }
    Ok(out)
}

/// The groups of `sys/kernel/iommu_groups`: number and directory (a note for
/// any other name).
pub(crate) fn group_dirs(l: &mut Loader) -> Vec<(GroupId, PathBuf)> {
    let gdir = Path::new("sys/kernel/iommu_groups");
    let mut out = Vec::new();
    for (name, _) in l.list(gdir) {
        match name.parse::<GroupId>() {
            Ok(id) => out.push((id, gdir.join(&name))),
            Err(_) => l.note(gdir.join(&name), "not a group number: ignored"),
        }
    }
    out
}

/// Whether the group in `dir` is one VFIO made up in no-IOMMU mode (its `name`).
pub(crate) fn group_is_noiommu(l: &mut Loader, dir: &Path) -> bool {
    let name = dir.join("name");
    // Most groups have no `name`: one confined lookup says so without a path walk.
    if l.fs.absent_beneath(&name) {
        return false;
    }
    l.trimmed(&name).is_some_and(|n| n == NOIOMMU_GROUP_NAME)
}

/// Whether and how the IOMMU is on: its units, the ACPI tables, the VFIO nodes.
pub(crate) fn iommu_state(l: &mut Loader, groups_present: bool) -> IommuState {
    let units = l
        .list(Path::new("sys/class/iommu"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    IommuState {
        units,
        groups_present,
        dmar_table: l.exists(Path::new("sys/firmware/acpi/tables/DMAR")),
        ivrs_table: l.exists(Path::new("sys/firmware/acpi/tables/IVRS")),
        vfio_container: l.exists(Path::new("dev/vfio/vfio")),
        iommufd: l.exists(Path::new("dev/iommu")),
    }
}

/// The group number a device's `iommu_group` link names (a note when it names
/// something else).
pub(crate) fn group_link(l: &mut Loader, at: At<'_>) -> Option<GroupId> {
    let n = l.link_name(at)?;
    match n.parse::<GroupId>() {
        Ok(g) => Some(g),
        Err(_) => {
            l.note(at.path(), format!("links to {n:?}, not a group number"));
            None
        }
    }
}

/// A 16-bit id: the attribute's value, else the config header's at `off`.
pub(crate) fn id16(attr: Option<u32>, config: Option<&[u8]>, off: usize) -> Option<u16> {
    attr.and_then(|v| u16::try_from(v).ok()).or_else(|| {
        let b = config.filter(|b| b.len() >= 64)?;
        Some(u16::from_le_bytes([b[off], b[off + 1]]))
    })
}

/// The class code: the attribute's value, else the config header's (zero when neither).
pub(crate) fn class_code(attr: Option<u32>, config: Option<&[u8]>) -> ClassCode {
    attr.filter(|v| *v <= 0xff_ffff)
        .map(ClassCode::from_u32)
        .or_else(|| {
            let b = config.filter(|b| b.len() >= 64)?;
            Some(ClassCode::from_u32(
                u32::from(b[0x0b]) << 16 | u32::from(b[0x0a]) << 8 | u32::from(b[0x09]),
            ))
        })
        .unwrap_or(ClassCode::from_u32(0))
}

/// The device directory an entry of `sys/bus/pci/devices` leads to (resolved
/// inside the root, link-free), or a note saying why the device is ignored.
pub(crate) fn device_dir(l: &mut Loader, link: &Path, listed: Kind) -> Option<PathBuf> {
    let resolved = if listed == Kind::Link {
        l.fs.resolve_listed_link(link)
    } else {
        l.fs.resolve(link)
    };
    match resolved {
        Ok(Some((dir, Kind::Dir))) => Some(dir),
        Ok(Some(_)) => {
            l.note(link, "not a directory: device ignored");
            None
        }
        Ok(None) => {
            l.note(link, "dangling link: device ignored");
            None
        }
        Err(e) => {
            let msg = format!("{}: device ignored", error_chain(&e));
            l.note(link, msg);
            None
        }
    }
}

fn cpu_vendor_of(cpuinfo: &str) -> CpuVendor {
    for line in cpuinfo.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if k.trim() == "vendor_id" {
                return match v.trim() {
                    "GenuineIntel" => CpuVendor::Intel,
                    "AuthenticAMD" | "HygonGenuine" => CpuVendor::Amd,
                    _ => CpuVendor::Other,
                };
            }
        }
    }
    CpuVendor::Other
}

/// Load the device `bdf` from `link`, an entry of `sys/bus/pci/devices` that the
/// listing showed as `listed` (normally a symbolic link).
fn load_device(l: &mut Loader, bdf: Bdf, link: &Path, listed: Kind) -> Option<Device> {
    let dir = device_dir(l, link, listed)?;
    // The chain: sys/devices/pciDDDD:BB/<bdf>/<bdf>/...
    let mut root_bus = String::new();
    let mut chain: Vec<Bdf> = Vec::new();
    let mut comps = dir.components().map(|c| c.as_os_str());
    let under_devices =
        comps.next().is_some_and(|c| c == "sys") && comps.next().is_some_and(|c| c == "devices");
    match comps.next().filter(|_| under_devices) {
        Some(top) => {
            root_bus = top.to_string_lossy().into_owned();
            // A component that is not UTF-8 is no address (as its lossy form would not be).
            chain.extend(comps.filter_map(|c| c.to_str()?.parse::<Bdf>().ok()));
        }
        None => l.note(
            &dir,
            "device directory is not under sys/devices: bridge chain unknown",
        ),
    }
    match chain.pop() {
        Some(last) if last == bdf => {}
        _ => {
            l.note(
                &dir,
                format!("directory name does not match {bdf}: bridge chain unknown"),
            );
            chain.clear();
        }
    }

    // Every attribute is read through one listing of the directory.
    let dd = l.fs.listed_dir(dir);
    let d = &dd;
    // Config space (binary; bounded at 4096 bytes).
    // One byte past the limit, so an oversized file is noticed rather than cut silently.
    let mut config = l.read_bytes(At::In(d, "config"), CONFIG_LIMIT + 1);
    match config.as_deref().map(<[u8]>::len) {
        None | Some(256) | Some(4096) => {}
        Some(n) if n < 64 => l.note(
            d.path().join("config"),
            format!("truncated: {n} bytes, less than the 64-byte header; config facts unknown"),
        ),
        Some(64) => l.note(
            d.path().join("config"),
            "only 64 bytes (read as non-root?): capabilities, FLR, PM and ACS unknown",
        ),
        Some(n) if n > CONFIG_LIMIT => {
            l.note(
                d.path().join("config"),
                format!("longer than {CONFIG_LIMIT} bytes: only the first {CONFIG_LIMIT} are config space"),
            );
            if let Some(b) = config.as_mut() {
                b.truncate(CONFIG_LIMIT);
            }
        }
        Some(n) => l.note(
            d.path().join("config"),
            format!(
                "unusual length {n} bytes (sysfs gives 64, 256 or 4096): decoded the first {} bytes",
                if n >= 256 { 256 } else { 64 }
            ),
        ),
    }
    let facts = config.as_deref().and_then(ConfigFacts::decode);
    let cfg = config.as_deref();
    let crate::inventory::Ids {
        vendor,
        device,
        class,
        subsystem_vendor,
        subsystem_device,
    } = crate::inventory::read_ids(l, d, |_| cfg.map(<[u8]>::to_vec))?;
    let revision = l
        .hex(At::In(d, "revision"))
        .and_then(|v| u8::try_from(v).ok())
        .or_else(|| config.as_deref().filter(|b| b.len() >= 64).map(|b| b[8]));

    let driver = l.link_name(At::In(d, "driver"));
    let driver_override = l
        .trimmed(At::In(d, "driver_override"))
        .filter(|s| !s.is_empty() && s != "(null)");
    let iommu_group = group_link(l, At::In(d, "iommu_group"));
    let reset_method = l
        .trimmed(At::In(d, "reset_method"))
        .map(|s| s.split_whitespace().map(str::to_string).collect());
    let boot_vga = l.parsed(At::In(d, "boot_vga"), "0 or 1", parse_bool01);
    let sriov_totalvfs = l.parsed(At::In(d, "sriov_totalvfs"), "a number", |s| s.parse().ok());
    let sriov_numvfs = l.parsed(At::In(d, "sriov_numvfs"), "a number", |s| s.parse().ok());
    let physfn = l
        .link_name(At::In(d, "physfn"))
        .and_then(|n| n.parse::<Bdf>().ok());
    let rom = l.exists(At::In(d, "rom"));
    let mut rebar = Vec::new();
    for (i, name) in (0u8..).zip(RESIZE_ATTRS) {
        if l.exists(At::In(d, name)) {
            rebar.push(i);
        }
    }
    let numa_node = l.parsed(At::In(d, "numa_node"), "a number", |s| s.parse().ok());
    let d3cold_allowed = l.parsed(At::In(d, "d3cold_allowed"), "0 or 1", parse_bool01);
    let power_state = l.trimmed(At::In(d, "power_state"));
    // `power/` is a directory: its `control` is read only when the listing has it.
    let power_control = if l.exists(At::In(d, "power")) {
        l.trimmed(&d.path().join("power/control"))
    } else {
        None
    };
    // The ACPI companion's _PR3 power resources: without them (here and on every
    // bridge above) the platform cannot cut the device's power.
    let acpi_pr3 = if l.exists(At::In(d, "firmware_node")) {
        Some(l.exists(&d.path().join("firmware_node/power_resources_D3hot")))
    } else {
        None
    };
    let resources = match l.text(At::In(d, "resource"), TEXT_LIMIT) {
        Some(t) => parse_resources(l, At::In(d, "resource"), &t),
        None => Vec::new(),
    };

    let dir = dd.into_path();

    Some(Device {
        bdf,
        sysfs_path: dir,
        root_bus,
        upstream: chain,
        vendor,
        device,
        subsystem_vendor,
        subsystem_device,
        class,
        revision,
        driver,
        driver_override,
        iommu_group,
        reset_method,
        boot_vga,
        sriov_totalvfs,
        sriov_numvfs,
        physfn,
        rom,
        rebar,
        numa_node,
        d3cold_allowed,
        power_state,
        power_control,
        acpi_pr3,
        resources,
        config,
        facts,
    })
}

fn parse_resources(l: &mut Loader, at: At<'_>, text: &str) -> Vec<Resource> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().take(MAX_RESOURCES) {
        match three_hex(line) {
            Some([start, end, flags]) => {
                if start != 0 || end != 0 || flags != 0 {
                    out.push(Resource {
                        index: i as u8,
                        start,
                        end,
                        flags,
                    });
                }
            }
            None => {
                l.note(
                    at.path(),
                    format!("line {}: not three hex numbers: ignored", i + 1),
                );
            }
        }
    }
    out
}

/// Exactly three white-space separated `0x` hex numbers (white space as
/// [`char::is_whitespace`]), without collecting the words.
fn three_hex(line: &str) -> Option<[u64; 3]> {
    let mut v = [0u64; 3];
    let mut n = 0;
    let mut word = |w: &str| -> Option<()> {
        let x = w
            .strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok())?;
        *v.get_mut(n)? = x;
        n += 1;
        Some(())
    };
    if line.is_ascii() {
        // The ASCII characters `char::is_whitespace` accepts, byte by byte.
        let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
        for w in line.as_bytes().split(ws).filter(|w| !w.is_empty()) {
            // ASCII, so always UTF-8.
            word(std::str::from_utf8(w).ok()?)?;
        }
    } else {
        for w in line.split_whitespace() {
            word(w)?;
        }
    }
    (n == 3).then_some(v)
}

/// `path` (a system path, `/etc/...`) relative to the root.
fn rel(path: &str) -> &Path {
    Path::new(path.trim_start_matches('/'))
}

/// A boot setup file: its text, or why it exists but cannot be read.
fn boot_file(l: &mut Loader, b: &mut BootSetup, path: &str) {
    match l.fs.read_text(rel(path), BIG_TEXT_LIMIT) {
        Ok(Some(t)) => {
            b.files.insert(path.to_string(), t);
        }
        Ok(None) => {}
        // A link to /dev/null masks a configuration file (modprobe.d(5), systemd's
        // convention): it reads as empty.
        Err(_) if matches!(l.fs.resolve(rel(path)), Ok(Some((p, Kind::Other))) if p == Path::new("dev/null")) =>
        {
            b.files.insert(path.to_string(), String::new());
        }
        Err(e) => {
            let msg = error_chain(&e);
            l.note(rel(path), msg.clone());
            b.unreadable.insert(path.to_string(), msg);
        }
    }
}

fn load_boot(l: &mut Loader, kernel: Option<&str>) -> BootSetup {
    let mut b = BootSetup::default();
    for path in [crate::boot::OS_RELEASE, crate::boot::OS_RELEASE_FALLBACK] {
        if let Some(t) = l.text(rel(path), TEXT_LIMIT) {
            b.os_release = t.lines().filter_map(crate::boot::os_release_line).collect();
            b.os_release_path = Some(path.to_string());
            break;
        }
    }
    for path in crate::boot::PROBED {
        if l.exists(rel(path)) {
            b.present.insert(path.to_string());
        }
    }
    b.proxmox = b.has("/etc/pve") || b.has("/usr/bin/pveversion");
    for path in crate::boot::FILES {
        boot_file(l, &mut b, path);
    }
    for (dir, suffix) in crate::boot::DIRS {
        for (n, k) in l.list(rel(dir)) {
            if n.ends_with(suffix) && k != Kind::Dir {
                boot_file(l, &mut b, &format!("{dir}/{n}"));
            }
        }
    }
    if let Some(release) = kernel.filter(|r| !r.contains('/') && !r.is_empty()) {
        let path = format!("/boot/config-{release}");
        // Only the options that matter are kept, and recorded for a snapshot.
        let keep = |t: &str| -> String {
            t.lines()
                .filter(|line| {
                    crate::boot::kernel_config_line(line)
                        .is_some_and(|(k, _)| crate::boot::KERNEL_CONFIG_KEYS.contains(&k))
                })
                .map(|line| format!("{}\n", line.trim()))
                .collect()
        };
        if let Some(t) = l.text(rel(&path), BIG_TEXT_LIMIT) {
            let kept = keep(&t);
            l.fs.record_as(rel(&path), kept.as_bytes());
            b.kernel_config = kept
                .lines()
                .filter_map(crate::boot::kernel_config_line)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            b.kernel_config_path = Some(path);
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;
    use crate::sysfs::Ops;

    /// Load `Fixture::many_gpus(n)` (3n devices: root port, GPU, HDMI audio, one
    /// group each; a new PCI domain every 248 root ports).
    fn load_many(n: usize, record: bool) -> (Host, Root) {
        let dir = tempfile::tempdir().unwrap();
        Fixture::many_gpus(n).write(dir.path()).unwrap();
        let (host, fs) = load_fs(dir.path(), record, Stage::Full).unwrap();
        assert_eq!(host.devices.len(), 3 * n);
        assert!(host.notes.is_empty(), "{:?}", host.notes);
        (host, fs)
    }

    /// The loader's work is linear in the device count: each device costs the
    /// same fixed number of file-system operations (resolve its link, list its
    /// directory once, open each attribute it has, read its links, its group)
    /// whatever the host's size; nothing is found by scanning other devices.
    #[test]
    fn loading_costs_the_same_per_device_at_any_size() {
        let ops = |n| load_many(n, false).1.ops.get();
        let (o20, o40, o140) = (ops(20), ops(40), ops(140));
        let d1 = o40.total() - o20.total();
        let d2 = o140.total() - o40.total();
        // 20 more GPU blocks, then 100 more: exactly 5 times the extra work.
        assert_eq!(d2, 5 * d1, "{o20:?} {o40:?} {o140:?}");
        // Per device (3 per block): one listing of its directory and one of its
        // group's, no lstat per attribute (absent ones cost nothing), one lstat
        // for its directory (its link was listed) and five for its group (its
        // directory, `devices`, `type`, `reserved_regions`, and `name`, which only
        // VFIO's no-IOMMU groups have), one open per attribute present.
        let per = |f: fn(&Ops) -> usize| (f(&o40) - f(&o20)) as f64 / 60.0;
        assert_eq!(per(|o| o.listings), 2.0, "{o20:?} {o40:?}");
        assert!(per(|o| o.stats) <= 6.0, "{o20:?} {o40:?}");
        assert!(per(|o| o.readlinks) <= 3.0, "{o20:?} {o40:?}");
        assert!(d1 as f64 / 60.0 <= 25.0, "{o20:?} {o40:?}");
    }

    /// `three_hex` accepts exactly what splitting on white space and parsing
    /// every word accepts.
    #[test]
    fn three_hex_is_the_split_and_parse_rule() {
        let reference = |line: &str| -> Option<[u64; 3]> {
            let v: Vec<Option<u64>> = line
                .split_whitespace()
                .map(|w| {
                    w.strip_prefix("0x")
                        .and_then(|h| u64::from_str_radix(h, 16).ok())
                })
                .collect();
            match v.as_slice() {
                [Some(a), Some(b), Some(c)] => Some([*a, *b, *c]),
                _ => None,
            }
        };
        let words = [
            "0x0",
            "0xff",
            "0x+1",
            "0x",
            "ff",
            "0xfffffffffffffffff",
            "x",
            "",
        ];
        let seps = [" ", "\t", "\x0b", "\x0c", "\u{a0}", "\u{3000}", "  "];
        for a in words {
            for b in words {
                for s in seps {
                    for t in seps {
                        for tail in ["", " 0x1", "\u{2003}", " \r"] {
                            let line = format!("{a}{s}{b}{t}0x10{tail}");
                            assert_eq!(three_hex(&line), reference(&line), "{line:?}");
                        }
                    }
                }
            }
        }
        proptest::proptest!(|(line in "[0x1 \t\x0b\u{a0}\u{85}a-f+]{0,40}")| {
            proptest::prop_assert_eq!(three_hex(&line), reference(&line));
        });
    }

    /// No file is read twice: every open is a distinct file of the trace.
    #[test]
    fn every_file_is_read_once() {
        let (host, fs) = load_many(40, true);
        let opens = fs.ops.get().opens;
        let trace = fs.take_trace().unwrap();
        assert_eq!(opens, trace.files.len());
        // Every device's config space is among them.
        for d in host.devices.values() {
            assert!(trace.files.contains_key(&d.sysfs_path.join("config")));
        }
    }
}
