//! [`Inventory::load`]: the devices and groups a listing shows (ids, class,
//! driver, IOMMU group), read with as few file-system operations as that takes.
//!
//! [`Host::load`](crate::Host::load) reads everything a verdict may need (about
//! fifteen attributes and the config space of every device, each group's
//! directory). A listing needs five facts per device, so the inventory reads
//! just those: `modalias` (the kernel's vendor, device and class in one file;
//! `vendor`, `device` and `class` where a tree lacks it: the kernel's values,
//! which for an SR-IOV VF differ from its config space), and the `driver` and
//! `iommu_group` links. Each device directory is opened once by the kernel's confined lookup
//! (`openat2` with `RESOLVE_BENEATH`), and every attribute is opened relative to
//! it: the kernel walks one path component per attribute instead of the whole
//! path, and a short file is read in one `read`. Anything that lookup cannot
//! answer in one call (an absolute or escaping link, a link in place of an
//! attribute, a kernel without `openat2`) is read the way `Host::load` reads it,
//! with the same notes. A missing id attribute falls back to the config header,
//! as in `Host::load`.
//!
//! Group membership comes from each device's `iommu_group` link; the groups
//! themselves are the numbers listed in `sys/kernel/iommu_groups`. The kernel
//! creates the link and the group's entry together, so on a live system or a
//! snapshot both sides agree; where a hand-made tree makes them disagree,
//! `Host::load` (and `passthru check`) note it.

use crate::error::Result;
use crate::fsroot::{FsRoot, Kind};
use crate::load::{
    class_code, device_dir, group_dirs, group_is_noiommu, group_link, id16, iommu_state,
    pci_entries, At, Loader,
};
use crate::model::{GroupId, IommuState, Note};
use passthru_pci_ids::{Bdf, ClassCode, DeviceId, VendorId};
use std::collections::BTreeMap;
use std::path::Path;

/// Largest config space (the fallback for missing ids reads the header of it).
const CONFIG_LIMIT: usize = 4096;

/// One PCI function as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDevice {
    /// Address.
    pub bdf: Bdf,
    /// Vendor id (`vendor`, else the config header).
    pub vendor: VendorId,
    /// Device id (`device`, else the config header).
    pub device: DeviceId,
    /// Class code (`class`, else the config header; zero when neither).
    pub class: ClassCode,
    /// Bound driver (the `driver` link's name).
    pub driver: Option<String>,
    /// IOMMU group (the `iommu_group` link's number).
    pub iommu_group: Option<GroupId>,
}

/// The devices and groups under a root, with the IOMMU state: what
/// `passthru list` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// IOMMU state, as in [`Host::iommu`](crate::Host::iommu).
    pub iommu: IommuState,
    /// Every group listed in `sys/kernel/iommu_groups`, with the devices whose
    /// `iommu_group` link names it (sorted).
    pub groups: BTreeMap<GroupId, Vec<Bdf>>,
    /// Every device, by address.
    pub devices: BTreeMap<Bdf, ListedDevice>,
    /// What could not be read or made sense of (as in [`Host::notes`](crate::Host::notes)).
    pub notes: Vec<Note>,
}

impl Inventory {
    /// Read the inventory under `root` (`/` for the live machine, a snapshot or a
    /// fixture tree). Errors as [`Host::load`](crate::Host::load): only an
    /// unusable root or one without `sys/bus/pci/devices`.
    pub fn load(root: impl AsRef<Path>) -> Result<Inventory> {
        Ok(load_fs(root.as_ref())?.0)
    }
}

/// Load, keeping the reader (in tests, its tally of operations).
fn load_fs(root: &Path) -> Result<(Inventory, FsRoot)> {
    {
        let mut l = Loader {
            fs: FsRoot::new(root, false)?,
            notes: Vec::new(),
        };
        let mut devices = BTreeMap::new();
        for (bdf, link, kind) in pci_entries(&mut l, root)? {
            if let Some(d) = listed_device(&mut l, bdf, &link, kind) {
                devices.insert(bdf, d);
            }
        }
        let dirs = group_dirs(&mut l);
        // An IOMMU stands behind the groups unless every one is VFIO's no-IOMMU
        // kind: usually the first group's absent `name` settles it.
        let mut iommu_groups = false;
        for (_, dir) in &dirs {
            if !group_is_noiommu(&mut l, dir) {
                iommu_groups = true;
                break;
            }
        }
        let mut groups: BTreeMap<GroupId, Vec<Bdf>> =
            dirs.into_iter().map(|(id, _)| (id, Vec::new())).collect();
        // Devices are visited in address order, so each group's list is sorted.
        for d in devices.values() {
            if let Some(members) = d.iommu_group.and_then(|g| groups.get_mut(&g)) {
                members.push(d.bdf);
            }
        }
        let iommu = iommu_state(&mut l, iommu_groups);
        let inv = Inventory {
            iommu,
            groups,
            devices,
            notes: l.notes,
        };
        Ok((inv, l.fs))
    }
}

/// One device: through its directory opened in one call, else by path.
fn listed_device(l: &mut Loader, bdf: Bdf, link: &Path, listed: Kind) -> Option<ListedDevice> {
    if let Some(fd) = l.fs.open_dir_fast(link) {
        return read_device(l, bdf, |n| At::Fast(&fd, n), || link.to_path_buf());
    }
    let dir = device_dir(l, link, listed)?;
    let dd = l.fs.dir(dir);
    read_device(l, bdf, |n| At::In(&dd, n), || dd.path().to_path_buf())
}

/// Vendor, device and class from a `modalias` value, exactly the kernel's
/// format (`pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X`, from the kernel's
/// own `vendor`, `device` and `class`); `None` for anything else.
pub fn parse_modalias(s: &str) -> Option<(VendorId, DeviceId, ClassCode)> {
    let s = s.strip_suffix('\n').unwrap_or(s);
    let mut rest = s.strip_prefix("pci:")?;
    let mut field = |tag: &str, digits: usize| -> Option<u32> {
        let r = rest.strip_prefix(tag)?;
        let h = r.get(..digits)?;
        if !h
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        {
            return None;
        }
        rest = &r[digits..];
        u32::from_str_radix(h, 16).ok()
    };
    let v = u16::try_from(field("v", 8)?).ok()?;
    let d = u16::try_from(field("d", 8)?).ok()?;
    let (_sv, _sd) = (field("sv", 8)?, field("sd", 8)?);
    let (bc, sc, pi) = (field("bc", 2)?, field("sc", 2)?, field("i", 2)?);
    if !rest.is_empty() {
        return None;
    }
    Some((
        VendorId(v),
        DeviceId(d),
        ClassCode::from_u32(bc << 16 | sc << 8 | pi),
    ))
}

/// The five facts, reading attribute `n` at `at(n)`; `dir()` names the device
/// directory in notes. The ids and class come from `modalias` when it is there
/// (one file instead of three; the kernel writes it from the same values as
/// `vendor`, `device` and `class`), else from those attributes.
fn read_device<'a>(
    l: &mut Loader,
    bdf: Bdf,
    at: impl Fn(&'a str) -> At<'a>,
    dir: impl Fn() -> std::path::PathBuf,
) -> Option<ListedDevice> {
    if let Some((vendor, device, class)) =
        l.parsed(at("modalias"), "pci:v…d…sv…sd…bc…sc…i…", parse_modalias)
    {
        return Some(ListedDevice {
            bdf,
            vendor,
            device,
            class,
            driver: l.link_name(at("driver")),
            iommu_group: group_link(l, at("iommu_group")),
        });
    }
    let vendor = l.hex(at("vendor"));
    let device = l.hex(at("device"));
    let class = l.hex(at("class"));
    // The config header only when an attribute is missing or garbled.
    let ids_ok = |v: Option<u32>| v.is_some_and(|v| v <= 0xffff);
    let config = if ids_ok(vendor) && ids_ok(device) && class.is_some_and(|c| c <= 0xff_ffff) {
        None
    } else {
        l.read_bytes(at("config"), CONFIG_LIMIT)
    };
    let cfg = config.as_deref();
    let (Some(vendor), Some(device)) = (id16(vendor, cfg, 0), id16(device, cfg, 2)) else {
        l.note(dir(), "no readable vendor/device id: device ignored");
        return None;
    };
    let class = class_code(class, cfg);
    let driver = l.link_name(at("driver"));
    let iommu_group = group_link(l, at("iommu_group"));
    Some(ListedDevice {
        bdf,
        vendor: VendorId(vendor),
        device: DeviceId(device),
        class,
        driver,
        iommu_group,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{self, Fixture};
    use crate::Host;
    use std::fs;
    use std::path::PathBuf;

    /// The inventory is `Host::load`'s model cut to what a listing shows.
    fn assert_agrees(root: &Path) {
        let host = Host::load(root).unwrap();
        let inv = Inventory::load(root).unwrap();
        let what = root.display();
        assert_eq!(inv.iommu, host.iommu, "{what}");
        let want: Vec<ListedDevice> = host
            .devices
            .values()
            .map(|d| ListedDevice {
                bdf: d.bdf,
                vendor: d.vendor,
                device: d.device,
                class: d.class,
                driver: d.driver.clone(),
                iommu_group: d.iommu_group,
            })
            .collect();
        let got: Vec<ListedDevice> = inv.devices.values().cloned().collect();
        assert_eq!(got, want, "{what}");
        let want_groups: BTreeMap<GroupId, Vec<Bdf>> = host
            .groups
            .values()
            .map(|g| {
                let m = g
                    .devices
                    .iter()
                    .copied()
                    .filter(|b| host.devices.contains_key(b))
                    .collect();
                (g.id, m)
            })
            .collect();
        assert_eq!(inv.groups, want_groups, "{what}");
        // A tree Host::load reads without a note reads without one here too
        // (`modalias`, which only the inventory reads, aside).
        if host.notes.is_empty() {
            let other: Vec<_> = inv
                .notes
                .iter()
                .filter(|n| !n.path.ends_with("modalias"))
                .collect();
            assert!(other.is_empty(), "{what}: {other:?}");
        }
    }

    fn fixtures_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
    }

    #[test]
    fn agrees_with_host_load_on_every_fixture_root() {
        let mut roots = 0;
        for e in fs::read_dir(fixtures_dir()).unwrap() {
            let p = e.unwrap().path();
            if p.join("sys/bus/pci/devices").is_dir() {
                assert_agrees(&p);
                roots += 1;
            }
        }
        // scenario-amd, host-noiommu, tcg-*, 14 vm-*.
        assert!(roots >= 18, "{roots} fixture roots");
        for f in [fixture::scenario_amd(), Fixture::many_gpus(30)] {
            let dir = tempfile::tempdir().unwrap();
            f.write(dir.path()).unwrap();
            assert_agrees(dir.path());
        }
    }

    /// The kernel's format, from real devices; anything else is refused.
    #[test]
    fn modalias_is_the_kernels_format() {
        let ok = [
            (
                "pci:v00008086d00000D57sv00000000sd00000000bc06sc00i00\n",
                (0x8086, 0x0d57, 0x060000),
            ),
            (
                "pci:v00001AF4d00001045sv00001AF4sd00001045bcFFscFFi00\n",
                (0x1af4, 0x1045, 0xffff00),
            ),
            (
                "pci:v00001002d00007300sv00001002sd00000B36bc03sc00i00",
                (0x1002, 0x7300, 0x030000),
            ),
        ];
        for (s, (v, d, c)) in ok {
            assert_eq!(
                parse_modalias(s),
                Some((VendorId(v), DeviceId(d), ClassCode::from_u32(c))),
                "{s:?}"
            );
        }
        for bad in [
            "",
            "pci:",
            "pci:v00008086d00000d57sv00000000sd00000000bc06sc00i00", // lower case
            "pci:v00018086d00000D57sv00000000sd00000000bc06sc00i00", // vendor > 16 bits
            "pci:v00008086d00000D57sv00000000sd00000000bc06sc00i0",  // short
            "pci:v00008086d00000D57sv00000000sd00000000bc06sc00i00x",
            "pci:v00008086d00000D57sv00000000sd00000000bc06sc00i00\n\n",
            "usb:v00008086d00000D57sv00000000sd00000000bc06sc00i00",
            "pci:v+0008086d00000D57sv00000000sd00000000bc06sc00i00",
            "pci:v0000808é6d00000D57sv00000000sd00000000bc06sc00i00",
        ] {
            assert_eq!(parse_modalias(bad), None, "{bad:?}");
        }
        proptest::proptest!(|(s in "pci:[vdsbci0-9A-Fa-f\n]{0,60}")| {
            let _ = parse_modalias(&s);
        });
        // What the kernel writes, parsed back.
        proptest::proptest!(|(v: u16, d: u16, sv: u16, sd: u16, c in 0u32..=0xff_ffff)| {
            let s = format!(
                "pci:v{v:08X}d{d:08X}sv{sv:08X}sd{sd:08X}bc{:02X}sc{:02X}i{:02X}\n",
                c >> 16,
                (c >> 8) & 0xff,
                c & 0xff
            );
            proptest::prop_assert_eq!(
                parse_modalias(&s),
                Some((VendorId(v), DeviceId(d), ClassCode::from_u32(c)))
            );
        });
    }

    /// scenario-amd written to a temporary root, and the path of its first device.
    fn scenario() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        fixture::scenario_amd().write(dir.path()).unwrap();
        let host = Host::load(dir.path()).unwrap();
        let d = host.devices.values().next().unwrap();
        let p = dir.path().join(&d.sysfs_path);
        (dir, p)
    }

    /// Hostile trees: an attribute that is a link (inside the root), a FIFO, a
    /// page-long attribute, an escaping device link, a missing `vendor` (the config
    /// header fills in): the same answers as `Host::load`, never a hang.
    #[test]
    fn hostile_attributes_read_as_host_load_reads_them() {
        // A link in place of an attribute (absolute: from the root): read
        // through the path road, to the same value.
        let (dir, dev) = scenario();
        fs::remove_file(dev.join("modalias")).unwrap();
        let before = Inventory::load(dir.path()).unwrap();
        fs::write(dir.path().join("class-elsewhere"), "0x0c0330\n").unwrap();
        fs::remove_file(dev.join("class")).unwrap();
        std::os::unix::fs::symlink("/class-elsewhere", dev.join("class")).unwrap();
        assert_agrees(dir.path());
        let after = Inventory::load(dir.path()).unwrap();
        let first = |i: &Inventory| i.devices.values().next().unwrap().class;
        assert_ne!(first(&before), first(&after));
        assert_eq!(first(&after), ClassCode::from_u32(0x0c0330));

        // A FIFO as `modalias`, and as `vendor` too: refused unopened, noted, no hang.
        let (dir, dev) = scenario();
        for name in ["modalias", "vendor"] {
            fs::remove_file(dev.join(name)).unwrap();
            let st = std::process::Command::new("mkfifo")
                .arg(dev.join(name))
                .status()
                .unwrap();
            assert!(st.success());
        }
        assert_agrees(dir.path());
        let inv = Inventory::load(dir.path()).unwrap();
        for name in ["modalias", "vendor"] {
            assert!(
                inv.notes
                    .iter()
                    .any(|n| n.path.ends_with(name) && n.message.contains("not a regular file")),
                "{name}: {:?}",
                inv.notes
            );
        }

        // A page-long attribute: read whole by path, then refused as garbage.
        let (dir, dev) = scenario();
        fs::write(dev.join("class"), "0".repeat(5000)).unwrap();
        assert_agrees(dir.path());

        // A garbled `modalias`: noted, and the attributes give the ids.
        let (dir, dev) = scenario();
        fs::write(dev.join("modalias"), "pci:garbage\n").unwrap();
        assert_agrees(dir.path());
        let inv = Inventory::load(dir.path()).unwrap();
        assert!(
            inv.notes.iter().any(|n| n.path.ends_with("modalias")),
            "{:?}",
            inv.notes
        );

        // No `modalias`, `vendor` or `device`: the config header gives the ids.
        let (dir, dev) = scenario();
        fs::remove_file(dev.join("modalias")).unwrap();
        fs::remove_file(dev.join("vendor")).unwrap();
        fs::remove_file(dev.join("device")).unwrap();
        assert_agrees(dir.path());

        // A device link leaving the root: ignored with Host::load's note.
        let (dir, _) = scenario();
        let bus = dir.path().join("sys/bus/pci/devices");
        let first = fs::read_dir(&bus).unwrap().next().unwrap().unwrap().path();
        fs::remove_file(&first).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc", &first).unwrap();
        assert_agrees(dir.path());
        let (host, inv) = (
            Host::load(dir.path()).unwrap(),
            Inventory::load(dir.path()).unwrap(),
        );
        let escape = |notes: &[Note]| {
            notes
                .iter()
                .filter(|n| n.message.contains("outside the root"))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(escape(&inv.notes), escape(&host.notes));
        assert_eq!(escape(&inv.notes).len(), 1);
    }

    /// Per device: one confined open of its directory, one `fstatat` and one
    /// open of `modalias`, two link reads; no listing. Linear in the device
    /// count, and far below `Host::load`'s work.
    #[test]
    fn costs_five_operations_per_device() {
        let ops = |n: usize| {
            let dir = tempfile::tempdir().unwrap();
            Fixture::many_gpus(n).write(dir.path()).unwrap();
            let (inv, fs) = load_fs(dir.path()).unwrap();
            assert_eq!(inv.devices.len(), 3 * n);
            assert!(inv.notes.is_empty(), "{:?}", inv.notes);
            fs.ops.get()
        };
        let (a, b) = (ops(20), ops(40));
        let per = |f: fn(&crate::fsroot::Ops) -> usize| (f(&b) - f(&a)) as f64 / 60.0;
        assert_eq!(per(|o| o.stats), 2.0, "{a:?} {b:?}");
        assert_eq!(per(|o| o.opens), 1.0, "{a:?} {b:?}");
        assert_eq!(per(|o| o.readlinks), 2.0, "{a:?} {b:?}");
        // One listing per group directory is not made: groups come from the links.
        assert_eq!(per(|o| o.listings), 0.0, "{a:?} {b:?}");
    }
}
