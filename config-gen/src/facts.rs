//! Read [`HostFacts`] from a root directory (`/` live, a snapshot or a fixture tree).
//!
//! Reads only what the generator needs: `/proc/cpuinfo`, `/proc/sys/kernel/osrelease`,
//! `/boot/config-<release>`, `/sys/bus/pci/devices/*/{vendor,device,class,boot_vga,driver}`,
//! the configuration files passthru edits or checks, and the presence of a few tools
//! (`update-grub`, `grub2-mkconfig`, `proxmox-boot-tool`, `update-initramfs`,
//! `mkinitcpio`, `dracut`). A missing file is a missing fact; an unreadable one is an
//! error naming its path.

use crate::host;
use crate::model::{
    Bootloader, CpuVendor, DeviceFacts, GrubFlavor, HostFacts, Initramfs, KernelVersion,
};
use crate::{Error, Result};
use passthru_pci_ids::{Bdf, ClassCode};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Resolve the system path `path` inside `root`, following symbolic links the way the
/// kernel would if `root` were `/`: an absolute target counts from `root`, `..` never
/// climbs above it. Returns the real path under `root` (which may not exist), or `None`
/// for a link loop (more than 40 links).
pub fn confined(root: &Path, path: &str) -> Option<PathBuf> {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .rev()
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let here = cur
            .iter()
            .fold(root.to_path_buf(), |p, c| p.join(c))
            .join(&c);
        match fs::read_link(&here) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    return None;
                }
                let t = target.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    cur.clear();
                }
                todo.extend(
                    t.split('/')
                        .filter(|c| !c.is_empty())
                        .map(String::from)
                        .rev(),
                );
            }
            Err(_) => cur.push(c),
        }
    }
    Some(cur.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

fn read_opt(root: &Path, path: &str) -> Result<Option<String>> {
    let Some(full) = confined(root, path) else {
        return Err(Error::Read {
            path: crate::apply::under(root, path),
            source: std::io::Error::other("too many levels of symbolic links"),
        });
    };
    // Configuration files are small; anything this large is not one (or not a file).
    const MAX: u64 = 16 << 20;
    if fs::metadata(&full).is_ok_and(|m| m.is_file() && m.len() > MAX) {
        return Err(Error::Syntax {
            path: full,
            line: 1,
            message: format!(
                "larger than {} MiB: not a configuration file passthru will read",
                MAX >> 20
            ),
        });
    }
    match fs::read(&full) {
        Ok(b) => String::from_utf8(b).map(Some).map_err(|e| Error::NotText {
            path: full,
            offset: e.utf8_error().valid_up_to(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => Ok(None),
        Err(source) => Err(Error::Read { path: full, source }),
    }
}

fn exists(root: &Path, path: &str) -> bool {
    confined(root, path).is_some_and(|p| p.exists())
}

fn hex_field(root: &Path, dev: &str, field: &str) -> Result<Option<u32>> {
    let path = format!("/sys/bus/pci/devices/{dev}/{field}");
    let Some(text) = read_opt(root, &path)? else {
        return Ok(None);
    };
    let t = text.trim();
    let digits = t.strip_prefix("0x").unwrap_or(t);
    u32::from_str_radix(digits, 16)
        .map(Some)
        .map_err(|_| Error::Syntax {
            path: crate::apply::under(root, &path),
            line: 1,
            message: format!("expected a hex number, found {t:?}"),
        })
}

/// Every PCI function under `root`'s `/sys/bus/pci/devices`.
pub fn read_devices(root: &Path) -> Result<Vec<DeviceFacts>> {
    let dir = crate::apply::under(root, "/sys/bus/pci/devices");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Read { path: dir, source }),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|source| Error::Read {
            path: dir.clone(),
            source,
        })?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(bdf) = name.parse::<Bdf>() else {
            continue;
        };
        let (Some(v), Some(d), Some(c)) = (
            hex_field(root, &name, "vendor")?,
            hex_field(root, &name, "device")?,
            hex_field(root, &name, "class")?,
        ) else {
            continue;
        };
        let boot_vga = hex_field(root, &name, "boot_vga")? == Some(1);
        let driver = fs::read_link(e.path().join("driver"))
            .ok()
            .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()));
        out.push(DeviceFacts {
            bdf,
            vendor: (v as u16).into(),
            device: (d as u16).into(),
            class: ClassCode::from_u32(c),
            driver,
            boot_vga,
            name: None,
        });
    }
    out.sort_by_key(|d| d.bdf);
    Ok(out)
}

/// The files [`crate::generate`] reads: the ones it edits plus modprobe.d, modules-load.d,
/// the Proxmox VM configs and GRUB's drop-ins (`/etc/default/grub.d/*.cfg`).
pub fn read_files(root: &Path) -> Result<BTreeMap<String, String>> {
    let mut paths: Vec<String> = [
        host::GRUB_DEFAULT,
        host::KERNEL_CMDLINE,
        host::KERNELSTUB_CONFIG,
        host::ETC_MODULES,
        host::INITRAMFS_TOOLS_MODULES,
        host::MKINITCPIO_CONF,
        host::MKINITCPIO_DROPIN,
        host::DRACUT_DROPIN,
        host::MODPROBE_VFIO,
        host::MODULES_LOAD_VFIO,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (dir, suffix) in [
        ("/etc/modprobe.d", ".conf"),
        ("/etc/modules-load.d", ".conf"),
        ("/etc/pve/qemu-server", ".conf"),
        (host::GRUB_DROPIN_DIR, ".cfg"),
    ] {
        if let Some(Ok(rd)) = confined(root, dir).map(fs::read_dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(suffix) {
                    paths.push(format!("{dir}/{n}"));
                }
            }
        }
    }
    paths.sort();
    paths.dedup();
    let mut out = BTreeMap::new();
    for p in paths {
        if let Some(t) = read_opt(root, &p)? {
            out.insert(p, t);
        }
    }
    Ok(out)
}

/// `CONFIG_INTEL_IOMMU_DEFAULT_ON` from a kernel config text: `y` (or Debian's
/// `CONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF=y`, on except for the integrated GPU) is on,
/// "is not set" without either is off, absent is unknown.
pub fn intel_default_on(config: &str) -> Option<bool> {
    let mut seen = false;
    for l in config.lines() {
        let l = l.trim();
        if l == "CONFIG_INTEL_IOMMU_DEFAULT_ON=y"
            || l == "CONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF=y"
        {
            return Some(true);
        }
        if l.starts_with("# CONFIG_INTEL_IOMMU_DEFAULT_ON") && l.ends_with("is not set") {
            seen = true;
        }
    }
    seen.then_some(false)
}

/// The facts `iommu-groups` already read (CPU, kernel, devices) taken from its host
/// model, the rest (configuration files, tools, kernel config) read under `root`.
/// `findings` starts empty: add [`crate::verdicts::warnings`] of a check.
pub fn from_host(root: &Path, host: &passthru_iommu_groups::Host) -> Result<HostFacts> {
    use passthru_iommu_groups::CpuVendor as V;
    let mut f = read(root)?;
    f.cpu = match host.cpu_vendor {
        V::Intel => CpuVendor::Intel,
        V::Amd => CpuVendor::Amd,
        V::Other => CpuVendor::Other,
    };
    if let Some(k) = host.kernel.as_deref() {
        f.kernel = KernelVersion::parse(k);
        f.acs_override_patch = k.ends_with("-pve").then_some(true);
        f.intel_iommu_default_on =
            read_opt(root, &format!("/boot/config-{k}"))?.and_then(|c| intel_default_on(&c));
    }
    // VT-d already active although the running command line does not ask for it: the
    // kernel turns it on by itself (CONFIG_INTEL_IOMMU_DEFAULT_ON, or the firmware's
    // DMA-protection opt-in).
    if f.cpu == CpuVendor::Intel && f.intel_iommu_default_on.is_none() && host.iommu.active() {
        let asked = host.cmdline.as_deref().is_some_and(|c| {
            c.split_whitespace().any(|t| {
                t.strip_prefix("intel_iommu=")
                    .is_some_and(|v| v.split(',').any(|o| o == "on"))
            })
        });
        if !asked {
            f.intel_iommu_default_on = Some(true);
        }
    }
    f.devices = host
        .devices
        .values()
        .map(|d| DeviceFacts {
            bdf: d.bdf,
            vendor: d.vendor,
            device: d.device,
            class: d.class,
            driver: d.driver.clone(),
            boot_vga: d.boot_vga == Some(true),
            name: None,
        })
        .collect();
    Ok(f)
}

/// Read everything under `root`. `findings` starts empty: the caller adds the verdicts.
pub fn read(root: &Path) -> Result<HostFacts> {
    let cpuinfo = read_opt(root, "/proc/cpuinfo")?.unwrap_or_default();
    let vendor = cpuinfo.lines().find_map(|l| {
        l.strip_prefix("vendor_id")
            .and_then(|r| r.split(':').nth(1))
            .map(str::trim)
    });
    let cpu = match vendor {
        Some("GenuineIntel") => CpuVendor::Intel,
        Some("AuthenticAMD") | Some("HygonGenuine") => CpuVendor::Amd,
        _ => CpuVendor::Other,
    };
    let release = read_opt(root, "/proc/sys/kernel/osrelease")?.map(|s| s.trim().to_string());
    let kernel = release.as_deref().and_then(KernelVersion::parse);
    let intel_iommu_default_on = match &release {
        Some(r) => read_opt(root, &format!("/boot/config-{r}"))?.and_then(|c| intel_default_on(&c)),
        None => None,
    };
    let acs_override_patch = release
        .as_deref()
        .filter(|r| r.ends_with("-pve"))
        .map(|_| true);
    let files = read_files(root)?;
    let bootloader = if files.contains_key(host::KERNEL_CMDLINE) {
        Some(Bootloader::SystemdBoot)
    } else if files.contains_key(host::KERNELSTUB_CONFIG) {
        Some(Bootloader::Kernelstub)
    } else if files.contains_key(host::GRUB_DEFAULT) {
        Some(Bootloader::Grub)
    } else {
        None
    };
    let grub_flavor = if exists(root, "/usr/sbin/update-grub") {
        GrubFlavor::UpdateGrub
    } else if exists(root, "/usr/sbin/grub2-mkconfig") || exists(root, "/usr/bin/grub2-mkconfig") {
        GrubFlavor::Grub2Mkconfig
    } else {
        GrubFlavor::GrubMkconfig
    };
    let initramfs =
        if exists(root, "/usr/sbin/update-initramfs") || exists(root, "/etc/initramfs-tools") {
            Some(Initramfs::InitramfsTools)
        } else if exists(root, "/usr/bin/mkinitcpio") || exists(root, host::MKINITCPIO_CONF) {
            Some(Initramfs::Mkinitcpio)
        } else if exists(root, "/usr/bin/dracut") || exists(root, "/etc/dracut.conf") {
            Some(Initramfs::Dracut)
        } else {
            None
        };
    Ok(HostFacts {
        cpu,
        kernel,
        intel_iommu_default_on,
        acs_override_patch,
        bootloader,
        grub_flavor,
        proxmox_boot_tool: exists(root, "/usr/sbin/proxmox-boot-tool"),
        initramfs,
        devices: read_devices(root)?,
        findings: Vec::new(),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("etc/modprobe.d")).unwrap();
        fs::create_dir_all(r.join("usr/lib/modprobe.d")).unwrap();
        fs::write(r.join("usr/lib/modprobe.d/x.conf"), "inside\n").unwrap();
        // Absolute target: counts from the root, not from the real /.
        std::os::unix::fs::symlink(
            "/usr/lib/modprobe.d/x.conf",
            r.join("etc/modprobe.d/abs.conf"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "../../../../../../usr/lib/modprobe.d/x.conf",
            r.join("etc/modprobe.d/rel.conf"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/hostname", r.join("etc/modprobe.d/out.conf")).unwrap();
        std::os::unix::fs::symlink("loop.conf", r.join("etc/modprobe.d/loop.conf")).unwrap();
        assert_eq!(
            read_opt(r, "/etc/modprobe.d/abs.conf").unwrap().as_deref(),
            Some("inside\n")
        );
        assert_eq!(
            read_opt(r, "/etc/modprobe.d/rel.conf").unwrap().as_deref(),
            Some("inside\n")
        );
        assert_eq!(
            read_opt(r, "/etc/modprobe.d/out.conf").unwrap(),
            None,
            "never the host's /etc/hostname"
        );
        assert!(read_opt(r, "/etc/modprobe.d/loop.conf").is_err());
    }

    #[test]
    fn kernel_config_default_on_variants() {
        assert_eq!(
            intel_default_on("CONFIG_INTEL_IOMMU=y\nCONFIG_INTEL_IOMMU_DEFAULT_ON=y\n"),
            Some(true)
        );
        assert_eq!(
            intel_default_on("# CONFIG_INTEL_IOMMU_DEFAULT_ON is not set\n"),
            Some(false)
        );
        // Debian's three-way choice (bugs.debian.org/935270).
        assert_eq!(intel_default_on("# CONFIG_INTEL_IOMMU_DEFAULT_ON is not set\nCONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF=y\n"), Some(true));
        assert_eq!(intel_default_on("CONFIG_INTEL_IOMMU=y\n"), None);
    }
}
