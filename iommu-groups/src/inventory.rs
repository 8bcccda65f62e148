//! The inventory stage of [`Host::load_stage`](crate::Host::load_stage): the
//! devices and groups a listing shows (ids, class, driver, IOMMU group), read with
//! as few file-system operations as that takes.
//!
//! The full stage reads everything a verdict may need (about fifteen attributes
//! and the config space of every device, each group's directory). A listing needs
//! five facts per device, so this stage reads just those: `modalias` (the kernel's
//! vendor, device and class in one file; `vendor`, `device` and `class` where a
//! tree lacks it: the kernel's values, which for an SR-IOV VF differ from its
//! config space), and the `driver` and `iommu_group` links. Each device directory
//! is opened through [`Root::open_dir`](crate::sysfs::Root::open_dir), which lets
//! the kernel resolve it beneath the root in one call where it can. A missing id
//! attribute falls back to the config header, as in the full stage.
//!
//! Group membership comes from each device's `iommu_group` link; the groups
//! themselves are the numbers listed in `sys/kernel/iommu_groups`. The kernel
//! creates the link and the group's entry together, so on a live system or a
//! snapshot both sides agree; where a hand-made tree makes them disagree, the
//! full stage (and `passthru check`) note it.

use crate::load::{class_code, device_dir, group_link, id16, At, Loader};
use crate::model::{Device, GroupId};
use crate::sysfs::Kind;
use passthru_pci_ids::{Bdf, ClassCode, DeviceId, VendorId};
use std::path::Path;

/// Largest config space (the fallback for missing ids reads the header of it).
const CONFIG_LIMIT: usize = 4096;

/// One device: its directory opened through the root's quickest road, else
/// resolved by path (with the full stage's notes for a dangling or escaping link).
pub(crate) fn listed_device(l: &mut Loader, bdf: Bdf, link: &Path, listed: Kind) -> Option<Device> {
    let dir = match l.fs.open_dir_beneath(link) {
        Some(d) => d,
        None => {
            let real = device_dir(l, link, listed)?;
            l.fs.listed_dir(real)
        }
    };
    read_device(l, bdf, &dir)
}

/// Vendor, device and class from a `modalias` value, exactly the kernel's
/// format (`pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X`, from the kernel's
/// own `vendor`, `device` and `class`); `None` for anything else.
pub fn parse_modalias(s: &str) -> Option<(VendorId, DeviceId, ClassCode)> {
    parse_modalias_ids(s).map(|i| (i.vendor, i.device, i.class))
}

/// A device's ids as the kernel states them (`modalias`, else the id attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    pub vendor: VendorId,
    pub device: DeviceId,
    pub class: ClassCode,
    pub subsystem_vendor: Option<VendorId>,
    pub subsystem_device: Option<DeviceId>,
}

/// Every id of a `modalias` value (see [`parse_modalias`]).
fn parse_modalias_ids(s: &str) -> Option<Ids> {
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
    let sv = u16::try_from(field("sv", 8)?).ok()?;
    let sd = u16::try_from(field("sd", 8)?).ok()?;
    let (bc, sc, pi) = (field("bc", 2)?, field("sc", 2)?, field("i", 2)?);
    if !rest.is_empty() {
        return None;
    }
    Some(Ids {
        vendor: VendorId(v),
        device: DeviceId(d),
        class: ClassCode::from_u32(bc << 16 | sc << 8 | pi),
        subsystem_vendor: Some(VendorId(sv)),
        subsystem_device: Some(DeviceId(sd)),
    })
}

/// The ids of the device in `dir`, the one way both stages read them: `modalias`
/// (one file instead of five; the kernel writes it from the same values as `vendor`,
/// `device`, `subsystem_*` and `class`), else those attributes, each missing one
/// from the config header `config()` gives (read only when needed). `None`, with a
/// note, when no vendor/device id is readable.
pub(crate) fn read_ids(
    l: &mut Loader,
    dir: &crate::sysfs::Dir,
    config: impl FnOnce(&mut Loader) -> Option<Vec<u8>>,
) -> Option<Ids> {
    let at = |n| At::In(dir, n);
    if let Some(ids) = l.parsed(at("modalias"), "pci:v…d…sv…sd…bc…sc…i…", parse_modalias_ids)
    {
        return Some(ids);
    }
    let vendor = l.hex(at("vendor"));
    let device = l.hex(at("device"));
    let class = l.hex(at("class"));
    let subsystem_vendor = l
        .hex(at("subsystem_vendor"))
        .and_then(|v| u16::try_from(v).ok());
    let subsystem_device = l
        .hex(at("subsystem_device"))
        .and_then(|v| u16::try_from(v).ok());
    // The config header only when an attribute is missing or garbled.
    let ids_ok = |v: Option<u32>| v.is_some_and(|v| v <= 0xffff);
    let config = if ids_ok(vendor) && ids_ok(device) && class.is_some_and(|c| c <= 0xff_ffff) {
        None
    } else {
        config(l)
    };
    let cfg = config.as_deref();
    let (Some(vendor), Some(device)) = (id16(vendor, cfg, 0), id16(device, cfg, 2)) else {
        l.note(dir.path(), "no readable vendor/device id: device ignored");
        return None;
    };
    Some(Ids {
        vendor: VendorId(vendor),
        device: DeviceId(device),
        class: class_code(class, cfg),
        subsystem_vendor: subsystem_vendor.map(VendorId),
        subsystem_device: subsystem_device.map(DeviceId),
    })
}

/// The five facts of the device in `dir`.
fn read_device(l: &mut Loader, bdf: Bdf, dir: &crate::sysfs::Dir) -> Option<Device> {
    let ids = read_ids(l, dir, |l| {
        l.read_bytes(At::In(dir, "config"), CONFIG_LIMIT)
    })?;
    let driver = l.link_name(At::In(dir, "driver"));
    let iommu_group: Option<GroupId> = group_link(l, At::In(dir, "iommu_group"));
    Some(Device::listed(
        bdf,
        dir.path().to_path_buf(),
        ids.vendor,
        ids.device,
        ids.class,
        driver,
        iommu_group,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{self, Fixture};
    use crate::load::load_fs;
    use crate::model::{Host, Note, Stage};
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::PathBuf;

    struct Inventory;
    impl Inventory {
        fn load(root: &Path) -> crate::Result<Host> {
            Host::load_stage(root, Stage::Inventory)
        }
    }

    /// What a listing shows of a device.
    fn listed(
        d: &Device,
    ) -> (
        Bdf,
        VendorId,
        DeviceId,
        ClassCode,
        Option<String>,
        Option<GroupId>,
    ) {
        (
            d.bdf,
            d.vendor,
            d.device,
            d.class,
            d.driver.clone(),
            d.iommu_group,
        )
    }

    /// The two stages read the listing's facts alike: `modalias` (inventory) and the
    /// id attributes (full stage) give the same ids, the quick directory road and
    /// the listed one the same links, and hostile entries the same notes.
    fn assert_agrees(root: &Path) {
        let host = Host::load(root).unwrap();
        let inv = Inventory::load(root).unwrap();
        let what = root.display();
        assert_eq!(inv.iommu, host.iommu, "{what}");
        let want: Vec<_> = host.devices.values().map(listed).collect();
        let got: Vec<_> = inv.devices.values().map(listed).collect();
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
        let got_groups: BTreeMap<GroupId, Vec<Bdf>> = inv
            .groups
            .values()
            .map(|g| (g.id, g.devices.clone()))
            .collect();
        assert_eq!(got_groups, want_groups, "{what}");
        let noiommu = |h: &Host| {
            h.groups
                .values()
                .map(|g| (g.id, g.noiommu))
                .collect::<Vec<_>>()
        };
        assert_eq!(noiommu(&inv), noiommu(&host), "{what}");
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

    #[test]
    fn stages_agree_on_every_fixture_root() {
        // The committed roots are the repository's; the published package checks the
        // generated scenarios below only.
        if let Some(dir) = fixture::workspace_fixtures() {
            let mut roots = 0;
            for e in fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.join("sys/bus/pci/devices").is_dir() {
                    assert_agrees(&p);
                    roots += 1;
                }
            }
            // scenario-amd, host-noiommu, tcg-*, 14 vm-*.
            assert!(roots >= 18, "{roots} fixture roots in {}", dir.display());
        }
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
        let first = |i: &Host| i.devices.values().next().unwrap().class;
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
    /// open of `modalias`, two link reads; no listing; and per group one confined
    /// lookup of the `name` only VFIO's no-IOMMU groups have. Linear in the device
    /// count, and far below the full stage's work.
    #[test]
    fn costs_five_operations_per_device_and_one_per_group() {
        let ops = |n: usize| {
            let dir = tempfile::tempdir().unwrap();
            Fixture::many_gpus(n).write(dir.path()).unwrap();
            let (inv, fs) = load_fs(dir.path(), false, Stage::Inventory).unwrap();
            assert_eq!(inv.devices.len(), 3 * n);
            assert!(inv.notes.is_empty(), "{:?}", inv.notes);
            fs.ops.get()
        };
        let (a, b) = (ops(20), ops(40));
        let per = |f: fn(&crate::sysfs::Ops) -> usize| (f(&b) - f(&a)) as f64 / 60.0;
        // many_gpus: one group per device.
        assert_eq!(per(|o| o.stats), 3.0, "{a:?} {b:?}");
        assert_eq!(per(|o| o.opens), 1.0, "{a:?} {b:?}");
        assert_eq!(per(|o| o.readlinks), 2.0, "{a:?} {b:?}");
        // One listing per group directory is not made: groups come from the links.
        assert_eq!(per(|o| o.listings), 0.0, "{a:?} {b:?}");
    }
}
