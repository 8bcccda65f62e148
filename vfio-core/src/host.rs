//! The little of sysfs that VFIO use needs: a device's group, driver, group peers,
//! cdev name and config bytes, read under a root directory (`/` live, a fixture tree
//! in tests). Kept behind these functions so the iommu-groups host model can replace
//! them without touching callers.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use passthru_pci_ids::Bdf;

use crate::error::{Blocker, Error, Result};

/// Largest config space (PCIe extended).
pub const CONFIG_MAX: usize = 4096;

/// `ROOT/sys/bus/pci/devices/BDF`.
pub fn device_dir(root: &Path, bdf: Bdf) -> PathBuf {
    root.join("sys/bus/pci/devices").join(bdf.to_string())
}

/// `ROOT/sys/kernel/iommu_groups/N/devices`.
pub fn group_devices_dir(root: &Path, group: u32) -> PathBuf {
    root.join("sys/kernel/iommu_groups")
        .join(group.to_string())
        .join("devices")
}

fn link_name(path: &Path) -> io::Result<Option<String>> {
    match fs::read_link(path) {
        Ok(t) => Ok(t.file_name().map(|n| n.to_string_lossy().into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Fail with [`Error::NoDevice`] when the device is not in sysfs.
pub fn require_device(root: &Path, bdf: Bdf) -> Result<()> {
    let dir = device_dir(root, bdf);
    if dir.exists() {
        Ok(())
    } else {
        Err(Error::NoDevice { bdf, path: dir })
    }
}

/// The device's IOMMU group id.
pub fn iommu_group(root: &Path, bdf: Bdf) -> Result<u32> {
    let path = device_dir(root, bdf).join("iommu_group");
    let name = link_name(&path).map_err(|source| Error::Sysfs {
        path: path.clone(),
        source,
    })?;
    match name.and_then(|n| n.parse().ok()) {
        Some(g) => Ok(g),
        None => Err(Error::NoGroup { bdf, path }),
    }
}

/// The device's driver (`None` when unbound).
pub fn driver(root: &Path, bdf: Bdf) -> Result<Option<String>> {
    let path = device_dir(root, bdf).join("driver");
    link_name(&path).map_err(|source| Error::Sysfs { path, source })
}

/// The devices of a group, sorted.
pub fn group_devices(root: &Path, group: u32) -> Result<Vec<Bdf>> {
    let dir = group_devices_dir(root, group);
    let rd = fs::read_dir(&dir).map_err(|source| Error::Sysfs {
        path: dir.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|source| Error::Sysfs {
            path: dir.clone(),
            source,
        })?;
        if let Some(b) = e.file_name().to_str().and_then(|s| s.parse().ok()) {
            out.push(b);
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a driver leaves a group viable (the kernel's rule: no driver, a VFIO
/// driver, or one of `pci-stub`/`pcieport`).
pub fn driver_keeps_viable(driver: Option<&str>) -> bool {
    match driver {
        None => true,
        Some(d) => {
            d.starts_with("vfio") || d.contains("_vfio") || d == "pci-stub" || d == "pcieport"
        }
    }
}

/// The devices of `group` that keep it from being viable, with their drivers.
pub fn blockers(root: &Path, group: u32) -> Result<Vec<Blocker>> {
    let mut out = Vec::new();
    for bdf in group_devices(root, group)? {
        let d = driver(root, bdf)?;
        if !driver_keeps_viable(d.as_deref()) {
            out.push(Blocker {
                bdf,
                driver: d.unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

/// The device's VFIO cdev name (`vfio0`), when the kernel made one.
pub fn vfio_cdev(root: &Path, bdf: Bdf) -> Option<String> {
    let dir = device_dir(root, bdf).join("vfio-dev");
    let mut names: Vec<String> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.starts_with("vfio"))
        .collect();
    names.sort();
    names.into_iter().next()
}

/// The sysfs `config` bytes (at most 4096).
pub fn read_config(root: &Path, bdf: Bdf) -> Result<Vec<u8>> {
    use std::io::Read;
    let path = device_dir(root, bdf).join("config");
    let f = fs::File::open(&path).map_err(|source| Error::Sysfs {
        path: path.clone(),
        source,
    })?;
    let mut buf = Vec::with_capacity(CONFIG_MAX);
    f.take(CONFIG_MAX as u64)
        .read_to_end(&mut buf)
        .map_err(|source| Error::Sysfs { path, source })?;
    Ok(buf)
}

/// Whether `group` is a no-IOMMU group (`vfio.enable_unsafe_noiommu_mode=1`): vfio made
/// it for a device without an IOMMU, names it `vfio-noiommu` in sysfs
/// (drivers/vfio/group.c `vfio_noiommu_group_alloc`) and its node is
/// `/dev/vfio/noiommu-N` instead of `/dev/vfio/N`.
pub fn is_noiommu_group(root: &Path, group: u32) -> bool {
    let name = root
        .join("sys/kernel/iommu_groups")
        .join(group.to_string())
        .join("name");
    fs::read_to_string(name).is_ok_and(|n| n.trim() == "vfio-noiommu")
        || root.join(format!("dev/vfio/noiommu-{group}")).exists()
}

/// The PF of an SR-IOV VF (its sysfs `physfn` link); `None` for any other device.
pub fn physfn(root: &Path, bdf: Bdf) -> Option<Bdf> {
    link_name(&device_dir(root, bdf).join("physfn"))
        .ok()
        .flatten()
        .and_then(|n| n.parse().ok())
}

/// Vendor and device id from the sysfs `vendor`/`device` attribute files. For an SR-IOV
/// VF these are the kernel's (PF vendor, VF device id), while its config space reads
/// 0xffff for both, as the SR-IOV specification has it.
pub fn sysfs_ids(root: &Path, bdf: Bdf) -> Option<(u16, u16)> {
    let read = |f: &str| {
        let t = fs::read_to_string(device_dir(root, bdf).join(f)).ok()?;
        u16::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok()
    };
    Some((read("vendor")?, read("device")?))
}

#[cfg(test)]
pub(crate) mod fixture {
    //! Fixture sysfs trees shaped like tests/data/captures/tcg-amd (devices.txt,
    //! iommu_groups.txt): group 16 = 06:00.0 + 06:00.1 on vfio-pci; group 20 =
    //! 0b:00.0 on virtio-pci + 0b:00.1 on vfio-pci (the non-viable group).
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// Add a device with its group and driver links (relative, as sysfs makes them)
    /// and its id files.
    pub fn add(root: &Path, bdf: &str, group: u32, driver: Option<&str>) {
        let dev = root.join("sys/devices/pci0000:00").join(bdf);
        std::fs::create_dir_all(&dev).unwrap();
        for (f, v) in [
            ("vendor", "0x8086"),
            ("device", "0x10d3"),
            ("class", "0x020000"),
        ] {
            std::fs::write(dev.join(f), format!("{v}\n")).unwrap();
        }
        let gdir = root.join(format!("sys/kernel/iommu_groups/{group}/devices"));
        std::fs::create_dir_all(&gdir).unwrap();
        symlink(
            format!("../../../../devices/pci0000:00/{bdf}"),
            gdir.join(bdf),
        )
        .unwrap();
        symlink(
            format!("../../../kernel/iommu_groups/{group}"),
            dev.join("iommu_group"),
        )
        .unwrap();
        if let Some(d) = driver {
            std::fs::create_dir_all(root.join("sys/bus/pci/drivers").join(d)).unwrap();
            symlink(format!("../../../bus/pci/drivers/{d}"), dev.join("driver")).unwrap();
        }
        let bus = root.join("sys/bus/pci/devices");
        std::fs::create_dir_all(&bus).unwrap();
        symlink(format!("../../../devices/pci0000:00/{bdf}"), bus.join(bdf)).unwrap();
    }

    /// The tcg-amd groups 16 and 20.
    pub fn amd(root: &Path) {
        add(root, "0000:06:00.0", 16, Some("vfio-pci"));
        add(root, "0000:06:00.1", 16, Some("vfio-pci"));
        add(root, "0000:0b:00.0", 20, Some("virtio-pci"));
        add(root, "0000:0b:00.1", 20, Some("vfio-pci"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_driver_and_peers_from_a_fixture_tree() {
        let t = tempfile::tempdir().unwrap();
        fixture::amd(t.path());
        let b: Bdf = "06:00.1".parse().unwrap();
        assert_eq!(iommu_group(t.path(), b).unwrap(), 16);
        assert_eq!(driver(t.path(), b).unwrap().as_deref(), Some("vfio-pci"));
        let peers: Vec<String> = group_devices(t.path(), 16)
            .unwrap()
            .iter()
            .map(|b| b.to_string())
            .collect();
        assert_eq!(peers, ["0000:06:00.0", "0000:06:00.1"]);
    }

    // tcg-amd/vfiotest-0000:0b:00.1.txt: group 20 is not viable because 0b:00.0 is on virtio-pci.
    #[test]
    fn blockers_name_the_device_on_a_host_driver() {
        let t = tempfile::tempdir().unwrap();
        fixture::amd(t.path());
        let b = blockers(t.path(), 20).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].bdf.to_string(), "0000:0b:00.0");
        assert_eq!(b[0].driver, "virtio-pci");
        assert!(blockers(t.path(), 16).unwrap().is_empty());
    }

    #[test]
    fn missing_group_link_is_no_group_naming_the_path() {
        let t = tempfile::tempdir().unwrap();
        let dev = t.path().join("sys/bus/pci/devices/0000:01:00.0");
        std::fs::create_dir_all(&dev).unwrap();
        let e = iommu_group(t.path(), "01:00.0".parse().unwrap()).unwrap_err();
        assert!(matches!(e, Error::NoGroup { .. }), "{e}");
        assert!(e.to_string().contains("iommu_group"), "{e}");
    }

    #[test]
    fn viable_drivers_follow_the_kernel_allowlist() {
        assert!(driver_keeps_viable(None));
        assert!(driver_keeps_viable(Some("vfio-pci")));
        assert!(driver_keeps_viable(Some("pcieport")));
        assert!(driver_keeps_viable(Some("pci-stub")));
        assert!(!driver_keeps_viable(Some("amdgpu")));
        assert!(!driver_keeps_viable(Some("snd_hda_intel")));
    }
}
