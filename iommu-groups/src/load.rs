//! `Host::load`: read the model under a root directory.

use crate::error::{Error, Result};
use crate::facts::ConfigFacts;
use crate::fsroot::{FsRoot, Kind, Trace, BIG_TEXT_LIMIT, TEXT_LIMIT};
use crate::model::*;
use passthru_pci_ids::{Bdf, ClassCode, DeviceId, VendorId};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest config space (PCIe extended configuration space).
const CONFIG_LIMIT: usize = 4096;
/// At most this many `resource` lines are kept.
const MAX_RESOURCES: usize = 64;

struct Loader {
    fs: FsRoot,
    notes: Vec<Note>,
}

impl Loader {
    fn note(&mut self, path: impl Into<PathBuf>, message: impl Into<String>) {
        self.notes.push(Note {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A text fact: absent when missing; unreadable or garbage gives a note and `None`.
    fn text(&mut self, rel: &Path, limit: usize) -> Option<String> {
        match self.fs.read_text(rel, limit) {
            Ok(v) => v,
            Err(e) => {
                let msg = error_chain(&e);
                self.note(rel, msg);
                None
            }
        }
    }

    fn trimmed(&mut self, rel: &Path) -> Option<String> {
        self.text(rel, TEXT_LIMIT).map(|s| s.trim().to_string())
    }

    fn parsed<T>(
        &mut self,
        rel: &Path,
        expected: &'static str,
        f: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let s = self.trimmed(rel)?;
        match f(&s) {
            Some(v) => Some(v),
            None => {
                let e = Error::Garbage {
                    path: rel.to_path_buf(),
                    content: s.chars().take(64).collect(),
                    expected,
                };
                self.note(rel, e.to_string());
                None
            }
        }
    }

    fn hex(&mut self, rel: &Path) -> Option<u32> {
        self.parsed(rel, "a hex number like 0x1002", parse_hex)
    }

    fn link_name(&mut self, rel: &Path) -> Option<String> {
        match self.fs.read_link(rel) {
            Ok(Some(t)) => t.file_name().and_then(|n| n.to_str()).map(str::to_string),
            Ok(None) => None,
            Err(e) => {
                let msg = error_chain(&e);
                self.note(rel, msg);
                None
            }
        }
    }

    fn exists(&mut self, rel: &Path) -> bool {
        match self.fs.probe(rel) {
            Ok(k) => k.is_some(),
            Err(e) => {
                let msg = error_chain(&e);
                self.note(rel, msg);
                false
            }
        }
    }

    fn list(&mut self, rel: &Path) -> Vec<(String, Kind)> {
        match self.fs.list(rel) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                let msg = error_chain(&e);
                self.note(rel, msg);
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
    pub fn load(root: impl AsRef<Path>) -> Result<Host> {
        Ok(load_inner(root.as_ref(), false)?.0)
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
        self.devices
            .values()
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
        self.devices
            .values()
            .filter(|o| o.upstream.contains(&bdf))
            .collect()
    }

    /// The functions of `bdf`'s slot other than `bdf` itself.
    pub fn slot_siblings(&self, bdf: Bdf) -> Vec<&Device> {
        self.devices
            .values()
            .filter(|o| o.bdf != bdf && o.bdf.slot() == bdf.slot())
            .collect()
    }
}

pub(crate) fn load_inner(root: &Path, record: bool) -> Result<(Host, Option<Trace>)> {
    let fs = FsRoot::new(root, record)?;
    let mut l = Loader {
        fs,
        notes: Vec::new(),
    };
    let bus_dir = Path::new("sys/bus/pci/devices");
    let entries = match l.fs.list(bus_dir)? {
        Some(v) => v,
        None => {
            return Err(Error::NoPciBus {
                path: root.join(bus_dir),
            })
        }
    };
    let mut devices = BTreeMap::new();
    for (name, _) in entries {
        let Ok(bdf) = name.parse::<Bdf>() else {
            l.note(bus_dir.join(&name), "not a PCI address: ignored");
            continue;
        };
        if let Some(d) = load_device(&mut l, bdf, &bus_dir.join(&name)) {
            devices.insert(bdf, d);
        }
    }

    // IOMMU groups.
    let mut groups = BTreeMap::new();
    let gdir = Path::new("sys/kernel/iommu_groups");
    for (name, _) in l.list(gdir) {
        let Ok(id) = name.parse::<GroupId>() else {
            l.note(gdir.join(&name), "not a group number: ignored");
            continue;
        };
        let mut members = Vec::new();
        for (dn, _) in l.list(&gdir.join(&name).join("devices")) {
            match dn.parse::<Bdf>() {
                Ok(b) => members.push(b),
                Err(_) => l.note(
                    gdir.join(&name).join("devices").join(&dn),
                    "not a PCI address: ignored",
                ),
            }
        }
        members.sort();
        let domain_type = l.trimmed(&gdir.join(&name).join("type"));
        groups.insert(
            id,
            Group {
                id,
                devices: members,
                domain_type,
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
                            d.iommu_group.unwrap_or_default(),
                            g.id
                        ),
                    });
                }
            }
        }
    }

    let units = l
        .list(Path::new("sys/class/iommu"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let iommu = IommuState {
        units,
        groups_present: !groups.is_empty(),
        dmar_table: l.exists(Path::new("sys/firmware/acpi/tables/DMAR")),
        ivrs_table: l.exists(Path::new("sys/firmware/acpi/tables/IVRS")),
        vfio_container: l.exists(Path::new("dev/vfio/vfio")),
        iommufd: l.exists(Path::new("dev/iommu")),
    };

    let cpu_vendor = match l
        .fs
        .read_bytes(Path::new("proc/cpuinfo"), BIG_TEXT_LIMIT, false)
    {
        Ok(Some(b)) => cpu_vendor_of(&String::from_utf8_lossy(&b)),
        Ok(None) => CpuVendor::Other,
        Err(e) => {
            let msg = error_chain(&e);
            l.note("proc/cpuinfo", msg);
            CpuVendor::Other
        }
    };
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
    let boot = load_boot(&mut l);

    let host = Host {
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
        notes: l.notes,
    };
    Ok((host, l.fs.take_trace()))
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

fn load_device(l: &mut Loader, bdf: Bdf, link: &Path) -> Option<Device> {
    let (dir, kind) = match l.fs.resolve(link) {
        Ok(Some(x)) => x,
        Ok(None) => {
            l.note(link, "dangling link: device ignored");
            return None;
        }
        Err(e) => {
            let msg = format!("{}: device ignored", error_chain(&e));
            l.note(link, msg);
            return None;
        }
    };
    if kind != Kind::Dir {
        l.note(link, "not a directory: device ignored");
        return None;
    }
    // The chain: sys/devices/pciDDDD:BB/<bdf>/<bdf>/...
    let mut root_bus = String::new();
    let mut chain: Vec<Bdf> = Vec::new();
    let comps: Vec<String> = dir
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if comps.len() >= 3 && comps[0] == "sys" && comps[1] == "devices" {
        root_bus = comps[2].clone();
        for c in &comps[3..] {
            if let Ok(b) = c.parse::<Bdf>() {
                chain.push(b);
            }
        }
    } else {
        l.note(
            &dir,
            "device directory is not under sys/devices: bridge chain unknown",
        );
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

    // Config space (binary; bounded at 4096 bytes).
    let cfg_path = dir.join("config");
    let config = match l.fs.read_bytes(&cfg_path, CONFIG_LIMIT, false) {
        Ok(v) => v,
        Err(e) => {
            let msg = error_chain(&e);
            l.note(&cfg_path, msg);
            None
        }
    };
    let facts = config.as_deref().and_then(ConfigFacts::decode);
    match config.as_deref().map(<[u8]>::len) {
        None => {}
        Some(n) if n < 64 => l.note(
            &cfg_path,
            format!("truncated: {n} bytes, less than the 64-byte header; config facts unknown"),
        ),
        Some(64) => l.note(
            &cfg_path,
            "only 64 bytes (read as non-root?): capabilities, FLR, PM and ACS unknown",
        ),
        Some(_) => {}
    }
    let cfg16 = |off: usize| -> Option<u16> {
        let b = config.as_deref()?;
        if b.len() < 64 {
            return None;
        }
        Some(u16::from_le_bytes([b[off], b[off + 1]]))
    };

    let vendor = l
        .hex(&dir.join("vendor"))
        .and_then(|v| u16::try_from(v).ok())
        .or_else(|| cfg16(0));
    let device = l
        .hex(&dir.join("device"))
        .and_then(|v| u16::try_from(v).ok())
        .or_else(|| cfg16(2));
    let (Some(vendor), Some(device)) = (vendor, device) else {
        l.note(&dir, "no readable vendor/device id: device ignored");
        return None;
    };
    let class = l
        .hex(&dir.join("class"))
        .filter(|v| *v <= 0xff_ffff)
        .map(ClassCode::from_u32)
        .or_else(|| {
            let b = config.as_deref().filter(|b| b.len() >= 64)?;
            Some(ClassCode::from_u32(
                u32::from(b[0x0b]) << 16 | u32::from(b[0x0a]) << 8 | u32::from(b[0x09]),
            ))
        })
        .unwrap_or(ClassCode::from_u32(0));
    let revision = l
        .hex(&dir.join("revision"))
        .and_then(|v| u8::try_from(v).ok())
        .or_else(|| config.as_deref().filter(|b| b.len() >= 64).map(|b| b[8]));
    let subsystem_vendor = l
        .hex(&dir.join("subsystem_vendor"))
        .and_then(|v| u16::try_from(v).ok())
        .map(VendorId);
    let subsystem_device = l
        .hex(&dir.join("subsystem_device"))
        .and_then(|v| u16::try_from(v).ok())
        .map(DeviceId);

    let driver = l.link_name(&dir.join("driver"));
    let driver_override = l
        .trimmed(&dir.join("driver_override"))
        .filter(|s| !s.is_empty() && s != "(null)");
    let iommu_group = match l.link_name(&dir.join("iommu_group")) {
        Some(n) => match n.parse::<GroupId>() {
            Ok(g) => Some(g),
            Err(_) => {
                l.note(
                    dir.join("iommu_group"),
                    format!("links to {n:?}, not a group number"),
                );
                None
            }
        },
        None => None,
    };
    let reset_method = l
        .trimmed(&dir.join("reset_method"))
        .map(|s| s.split_whitespace().map(str::to_string).collect());
    let boot_vga = l.parsed(&dir.join("boot_vga"), "0 or 1", parse_bool01);
    let sriov_totalvfs = l.parsed(&dir.join("sriov_totalvfs"), "a number", |s| s.parse().ok());
    let sriov_numvfs = l.parsed(&dir.join("sriov_numvfs"), "a number", |s| s.parse().ok());
    let physfn = l
        .link_name(&dir.join("physfn"))
        .and_then(|n| n.parse::<Bdf>().ok());
    let rom = l.exists(&dir.join("rom"));
    let mut rebar = Vec::new();
    for i in 0u8..6 {
        if l.exists(&dir.join(format!("resource{i}_resize"))) {
            rebar.push(i);
        }
    }
    let numa_node = l.parsed(&dir.join("numa_node"), "a number", |s| s.parse().ok());
    let d3cold_allowed = l.parsed(&dir.join("d3cold_allowed"), "0 or 1", parse_bool01);
    let power_state = l.trimmed(&dir.join("power_state"));
    let resources = match l.text(&dir.join("resource"), TEXT_LIMIT) {
        Some(t) => parse_resources(l, &dir.join("resource"), &t),
        None => Vec::new(),
    };

    Some(Device {
        bdf,
        sysfs_path: dir,
        root_bus,
        upstream: chain,
        vendor: VendorId(vendor),
        device: DeviceId(device),
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
        resources,
        config,
        facts,
    })
}

fn parse_resources(l: &mut Loader, path: &Path, text: &str) -> Vec<Resource> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().take(MAX_RESOURCES) {
        let v: Vec<Option<u64>> = line
            .split_whitespace()
            .map(|w| {
                w.strip_prefix("0x")
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
            })
            .collect();
        match v.as_slice() {
            [Some(start), Some(end), Some(flags)] => {
                if *start != 0 || *end != 0 || *flags != 0 {
                    out.push(Resource {
                        index: i as u8,
                        start: *start,
                        end: *end,
                        flags: *flags,
                    });
                }
            }
            _ => {
                l.note(
                    path,
                    format!("line {}: not three hex numbers: ignored", i + 1),
                );
            }
        }
    }
    out
}

fn load_boot(l: &mut Loader) -> BootSetup {
    let mut b = BootSetup::default();
    if let Some(t) = l.text(Path::new("etc/os-release"), TEXT_LIMIT) {
        for line in t.lines() {
            if let Some((k, v)) = line.split_once('=') {
                b.os_release
                    .insert(k.trim().to_string(), unquote(v.trim()).to_string());
            }
        }
    }
    b.proxmox = l.exists(Path::new("etc/pve")) | l.exists(Path::new("usr/bin/pveversion"));
    b.grub_default = l.text(Path::new("etc/default/grub"), BIG_TEXT_LIMIT);
    if let Some(t) = &b.grub_default {
        for line in t.lines() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("GRUB_CMDLINE_LINUX_DEFAULT=") {
                b.grub_cmdline_linux_default = Some(unquote(v).to_string());
            } else if let Some(v) = line.strip_prefix("GRUB_CMDLINE_LINUX=") {
                b.grub_cmdline_linux = Some(unquote(v).to_string());
            }
        }
    }
    b.kernel_cmdline = l.text(Path::new("etc/kernel/cmdline"), TEXT_LIMIT);
    b.modprobe_d = conf_dir(l, Path::new("etc/modprobe.d"));
    b.modules = l.text(Path::new("etc/modules"), BIG_TEXT_LIMIT);
    b.mkinitcpio = l.text(Path::new("etc/mkinitcpio.conf"), BIG_TEXT_LIMIT);
    b.dracut_conf_d = conf_dir(l, Path::new("etc/dracut.conf.d"));
    b
}

fn conf_dir(l: &mut Loader, dir: &Path) -> Vec<ConfFile> {
    let mut out = Vec::new();
    for (n, k) in l.list(dir) {
        if !n.ends_with(".conf") || k == Kind::Dir || k == Kind::Other {
            continue;
        }
        let p = dir.join(&n);
        if let Some(text) = l.text(&p, BIG_TEXT_LIMIT) {
            out.push(ConfFile { path: p, text });
        }
    }
    out
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}
