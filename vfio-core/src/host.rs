//! The live sysfs state VFIO use needs between loads of the host model: a device's
//! group, driver, group peers, cdev name and config bytes, as they are right now
//! (after a bind, say). Every read goes through the host model's confined layer
//! ([`passthru_iommu_groups::sysfs::Root`]): links resolved inside the root, bounded
//! reads, only regular files opened. Discovery itself (which group, which peers,
//! which drivers) comes from the host model ([`passthru_iommu_groups::Host`]).

use std::io;
use std::path::{Path, PathBuf};

use passthru_iommu_groups::sysfs::Root;
use passthru_pci_ids::Bdf;

use crate::error::{Blocker, Error, HostPath, Result};

/// Largest config space (PCIe extended).
pub const CONFIG_MAX: usize = 4096;

/// `ROOT/sys/bus/pci/devices/BDF`.
pub fn device_dir(root: &Path, bdf: Bdf) -> PathBuf {
    root.join(device_rel(bdf))
}

/// `sys/bus/pci/devices/BDF`, relative to the root.
pub fn device_rel(bdf: Bdf) -> PathBuf {
    Path::new("sys/bus/pci/devices").join(bdf.to_string())
}

/// `ROOT/sys/kernel/iommu_groups/N/devices`.
pub fn group_devices_dir(root: &Path, group: u32) -> PathBuf {
    root.join(group_rel(group)).join("devices")
}

fn group_rel(group: u32) -> PathBuf {
    Path::new("sys/kernel/iommu_groups").join(group.to_string())
}

/// The I/O error behind a confined-read error (its own message when there is none).
fn io_of(e: passthru_iommu_groups::Error) -> io::Error {
    match e {
        passthru_iommu_groups::Error::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

/// Run `f` on a confined reader of `root`; errors name `root.join(rel)`.
fn with_root<T>(
    root: &Path,
    rel: &Path,
    f: impl FnOnce(&Root) -> std::result::Result<T, passthru_iommu_groups::Error>,
) -> Result<T> {
    Root::new(root)
        .and_then(|r| f(&r))
        .map_err(|e| Error::Sysfs {
            path: HostPath::new(root, rel),
            source: io_of(e),
        })
}

/// The last component of the link `rel`'s target (`None` when absent or not a link).
fn link_name(root: &Path, rel: &Path) -> Result<Option<String>> {
    with_root(root, rel, |r| r.read_link(rel))
        .map(|t| t.and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned())))
}

/// Fail with [`Error::NoDevice`] when the device is not in sysfs.
///
/// # Errors
///
/// Error::NoDevice naming the path looked for; Error::Host when the sysfs tree cannot be
/// read.
pub fn require_device(root: &Path, bdf: Bdf) -> Result<()> {
    let rel = device_rel(bdf);
    match with_root(root, &rel, |r| r.kind(&rel)) {
        Ok(Some(_)) => Ok(()),
        _ => Err(Error::NoDevice {
            bdf,
            path: HostPath::new(root, rel),
        }),
    }
}

/// The device's IOMMU group id.
///
/// # Errors
///
/// Error::NoGroup naming the missing `iommu_group` link; Error::Sysfs or Error::Host when
/// it cannot be read.
pub fn iommu_group(root: &Path, bdf: Bdf) -> Result<u32> {
    let rel = device_rel(bdf).join("iommu_group");
    match link_name(root, &rel)?.and_then(|n| n.parse().ok()) {
        Some(g) => Ok(g),
        None => Err(Error::NoGroup {
            bdf,
            path: HostPath::new(root, rel),
        }),
    }
}

/// The device's driver (`None` when unbound).
///
/// # Errors
///
/// Error::Sysfs or Error::Host naming what cannot be read.
pub fn driver(root: &Path, bdf: Bdf) -> Result<Option<String>> {
    link_name(root, &device_rel(bdf).join("driver"))
}

/// The devices of a group, sorted.
///
/// # Errors
///
/// Error::Sysfs naming the group's `devices` directory when it cannot be listed.
pub fn group_devices(root: &Path, group: u32) -> Result<Vec<Bdf>> {
    let rel = group_rel(group).join("devices");
    let entries = with_root(root, &rel, |r| r.list(&rel))?.ok_or_else(|| Error::Sysfs {
        path: HostPath::new(root, &rel),
        source: io::Error::from(io::ErrorKind::NotFound),
    })?;
    let mut out: Vec<Bdf> = entries.iter().filter_map(|(n, _)| n.parse().ok()).collect();
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
///
/// # Errors
///
/// As host::group_devices and host::driver.
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
    let rel = device_rel(bdf).join("vfio-dev");
    let entries = with_root(root, &rel, |r| r.list(&rel)).ok()??;
    // Listed sorted by name.
    entries
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| n.starts_with("vfio"))
}

/// The sysfs `config` bytes (at most 4096).
///
/// # Errors
///
/// Error::Sysfs naming the `config` file when it cannot be read.
pub fn read_config(root: &Path, bdf: Bdf) -> Result<Vec<u8>> {
    let rel = device_rel(bdf).join("config");
    with_root(root, &rel, |r| r.read_bytes(&rel, CONFIG_MAX))?.ok_or_else(|| Error::Sysfs {
        path: HostPath::new(root, &rel),
        source: io::Error::from(io::ErrorKind::NotFound),
    })
}

/// Whether `group` is a no-IOMMU group (`vfio.enable_unsafe_noiommu_mode=1`): vfio made
/// it for a device without an IOMMU, names it `vfio-noiommu` in sysfs
/// (drivers/vfio/group.c `vfio_noiommu_group_alloc`) and its node is
/// `/dev/vfio/noiommu-N` instead of `/dev/vfio/N`.
pub fn is_noiommu_group(root: &Path, group: u32) -> bool {
    let name = group_rel(group).join("name");
    let node = PathBuf::from(format!("dev/vfio/noiommu-{group}"));
    let Ok(r) = Root::new(root) else {
        return false;
    };
    r.read_text(&name, 256)
        .ok()
        .flatten()
        .is_some_and(|n| n.trim() == passthru_iommu_groups::NOIOMMU_GROUP_NAME)
        || r.kind(&node).ok().flatten().is_some()
}

/// The PF of an SR-IOV VF (its sysfs `physfn` link); `None` for any other device.
pub fn physfn(root: &Path, bdf: Bdf) -> Option<Bdf> {
    link_name(root, &device_rel(bdf).join("physfn"))
        .ok()
        .flatten()
        .and_then(|n| n.parse().ok())
}

/// Vendor and device id from the sysfs `vendor`/`device` attribute files. For an SR-IOV
/// VF these are the kernel's (PF vendor, VF device id), while its config space reads
/// 0xffff for both, as the SR-IOV specification has it.
pub fn sysfs_ids(root: &Path, bdf: Bdf) -> Option<(u16, u16)> {
    let r = Root::new(root).ok()?;
    let read = |f: &str| {
        let t = r.read_text(&device_rel(bdf).join(f), 64).ok()??;
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

    /// Reads are confined: an absolute link counts from the root, never from the
    /// machine's own `/`.
    #[test]
    fn links_never_leave_the_root() {
        let t = tempfile::tempdir().unwrap();
        fixture::amd(t.path());
        let dev = t.path().join("sys/devices/pci0000:00/0000:06:00.0");
        std::os::unix::fs::symlink("/etc/passwd", dev.join("config")).unwrap();
        let b: Bdf = "06:00.0".parse().unwrap();
        let e = read_config(t.path(), b).unwrap_err();
        assert!(e.to_string().contains("config"), "{e}");
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/passwd"), [0x86, 0x80, 0xd3, 0x10]).unwrap();
        assert_eq!(read_config(t.path(), b).unwrap(), [0x86, 0x80, 0xd3, 0x10]);
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
