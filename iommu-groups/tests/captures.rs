//! The model and the reset/isolation rules checked against what real 6.12
//! kernels answered (tests/data/captures: QEMU TCG guests with Intel and AMD
//! vIOMMUs, VFIO ioctl results per device).

mod common;

use common::*;
use passthru_iommu_groups::{
    check, check_bdfs, reset, Code, DeviceSpec, GroupId, Host, Severity, Stage, Verdict,
};
use passthru_pci_ids::Bdf;

const RUNS: [&str; 2] = ["tcg-amd", "tcg-intel"];

/// The capture's root: the committed tree (tests/snapshots.rs checks it equals
/// the converter's output), or a fresh one while blessing.
fn load(name: &str) -> (tempfile::TempDir, Host) {
    let dir = tempfile::tempdir().unwrap();
    let root = if bless() {
        capture_fixture(name).write(dir.path()).unwrap();
        dir.path().to_path_buf()
    } else {
        repo().join("tests/fixtures").join(name)
    };
    let host = Host::load(root).unwrap();
    assert!(host.notes.is_empty(), "{name}: {:?}", host.notes);
    (dir, host)
}

fn b(s: &str) -> Bdf {
    s.parse().unwrap()
}

/// docs/rules.md "Reset: the kernel's rules": the recomputed methods are non-empty
/// exactly when the kernel's VFIO_DEVICE_GET_INFO set the RESET flag.
#[test]
fn recomputed_reset_matches_vfio_reset_flag() {
    let mut compared = 0;
    for run in RUNS {
        let (_d, host) = load(run);
        for a in vfio_answers(run) {
            let Some(flag) = a.reset_flag else { continue };
            let dev = host.device(a.bdf).unwrap();
            let ra = reset::analyse(&host, dev);
            assert_eq!(
                !ra.methods.is_empty(),
                flag,
                "{run} {}: recomputed {:?} ({:?}), kernel RESET={flag}",
                a.bdf,
                ra.methods,
                ra.unavailable
            );
            compared += 1;
        }
    }
    assert!(compared >= 18, "only {compared} devices compared");
}

/// docs/rules.md: "reset_method is probed ... before its sibling functions exist":
/// 06:00.0 (e1000e, function 0 of a two-function device) lists `bus`, but a bus
/// reset needs the device alone on its bus.
#[test]
fn stale_reset_method_bus_is_not_trusted_on_multifunction() {
    for run in RUNS {
        let (_d, host) = load(run);
        let dev = host.device(b("06:00.0")).unwrap();
        assert!(dev
            .reset_method
            .as_ref()
            .unwrap()
            .contains(&"bus".to_string()));
        let ra = reset::analyse(&host, dev);
        assert!(!ra.methods.contains(&reset::ResetMethod::Bus), "{run}");
        assert!(ra.methods.contains(&reset::ResetMethod::Pm), "{run}");
    }
}

/// docs/rules.md: bus reset only when alone on the bus, not on a root bus, with a
/// parent bridge: the edu at 09:00.0 alone behind a switch downstream port gets
/// `bus` (kernel RESET=1), the edu on the root bus (00:08.0) gets nothing.
#[test]
fn bus_reset_needs_parent_bridge_and_alone_on_bus() {
    for run in RUNS {
        let (_d, host) = load(run);
        let alone = reset::analyse(&host, host.device(b("09:00.0")).unwrap());
        assert_eq!(alone.methods, vec![reset::ResetMethod::Bus], "{run}");
        let root = reset::analyse(&host, host.device(b("00:08.0")).unwrap());
        assert!(root.methods.is_empty(), "{run}");
        assert!(root.hot_reset.is_none(), "{run}: no bridge to hot reset");
    }
}

/// VFIO hot reset: the devices and groups the recomputed hot reset affects are
/// exactly what VFIO_DEVICE_GET_PCI_HOT_RESET_INFO listed.
#[test]
fn hot_reset_affected_set_matches_kernel_hot_reset_info() {
    let mut compared = 0;
    for run in RUNS {
        let (_d, host) = load(run);
        for a in vfio_answers(run) {
            let dev = host.device(a.bdf).unwrap();
            let ra = reset::analyse(&host, dev);
            match (&a.hot_reset_deps, &ra.hot_reset) {
                (Some(deps), Some(h)) => {
                    let mut want: Vec<Bdf> = deps.iter().map(|d| d.1).collect();
                    want.sort();
                    assert_eq!(h.affected, want, "{run} {}", a.bdf);
                    let mut groups: Vec<GroupId> = deps.iter().map(|d| GroupId(d.0)).collect();
                    groups.sort();
                    groups.dedup();
                    assert_eq!(h.groups, groups, "{run} {}", a.bdf);
                    compared += 1;
                }
                (None, None) => compared += 1,
                // A non-viable group stops the test program before hot-reset info.
                (None, Some(_)) if a.viable == Some(false) => {}
                (k, m) => panic!("{run} {}: kernel {k:?}, model {m:?}", a.bdf),
            }
        }
    }
    assert!(compared >= 18, "only {compared} compared");
}

/// Issue `group-shared`: the kernel refused SET_CONTAINER (group not viable) for
/// 0b:00.1 because 0b:00.0 in its group is bound to virtio-pci; the verdict fails
/// and names the peer.
#[test]
fn group_shared_fails_where_kernel_group_was_not_viable() {
    let (_d, host) = load("tcg-amd");
    let nonviable: Vec<_> = vfio_answers("tcg-amd")
        .into_iter()
        .filter(|a| a.viable == Some(false))
        .collect();
    assert_eq!(nonviable.len(), 1);
    let r = check_bdfs(&host, &[nonviable[0].bdf]).unwrap();
    let d = &r.devices[0];
    assert_eq!(d.verdict, Verdict::Fail);
    let f = d
        .findings
        .iter()
        .find(|f| f.code == Code::GroupShared)
        .unwrap();
    assert_eq!(f.severity, Severity::Fail);
    assert!(f.message.contains("0000:0b:00.0"), "{}", f.message);
}

/// Issue `group-shared`: "bridges do not count": the PCIe-to-PCI bridge 04:00.0
/// shares group 15/13 with the two conventional devices behind it; checking both
/// conventional devices together is not group-shared, checking one is.
#[test]
fn group_shared_ignores_bridges_and_requested_peers() {
    for run in RUNS {
        let (_d, host) = load(run);
        let one = check_bdfs(&host, &[b("05:01.0")]).unwrap();
        let f = one.devices[0]
            .findings
            .iter()
            .find(|f| f.code == Code::GroupShared)
            .unwrap_or_else(|| panic!("{run}: no group-shared"));
        assert!(f.message.contains("0000:05:02.0"));
        assert!(!f.message.contains("0000:04:00.0"), "{}", f.message);
        let both = check_bdfs(&host, &[b("05:01.0"), b("05:02.0")]).unwrap();
        for d in &both.devices {
            assert!(
                d.findings.iter().all(|f| f.code != Code::GroupShared),
                "{run} {}",
                d.bdf
            );
            assert!(d.group_peers.contains(&b("04:00.0")));
        }
    }
}

/// Issue `acs-missing` (libvirt's walk): the xio3130 downstream port 08:00.0 has no
/// ACS capability (its endpoint shares its group); root ports are not checked.
#[test]
fn acs_missing_on_switch_downstream_port_not_root_port() {
    for run in RUNS {
        let (_d, host) = load(run);
        let r = check_bdfs(&host, &[b("09:00.0"), b("01:00.0")]).unwrap();
        let behind_switch = r.devices.iter().find(|d| d.bdf == b("09:00.0")).unwrap();
        let acs: Vec<_> = behind_switch
            .findings
            .iter()
            .filter(|f| f.code == Code::AcsMissing)
            .collect();
        assert_eq!(acs.len(), 1, "{run}");
        assert!(acs[0].message.contains("0000:08:00.0"));
        let on_root_port = r.devices.iter().find(|d| d.bdf == b("01:00.0")).unwrap();
        assert!(on_root_port
            .findings
            .iter()
            .all(|f| f.code != Code::AcsMissing));
    }
}

/// docs/rules.md grouping: "the AMD IOMMU's own PCI function has no group"; group
/// types follow iommu=pt (identity) or not (DMA).
#[test]
fn groups_and_types_as_the_kernel_made_them() {
    let (_d, amd) = load("tcg-amd");
    assert!(amd.device(b("00:01.0")).unwrap().iommu_group.is_none());
    assert_eq!(
        amd.groups[&GroupId(16)].devices,
        vec![b("06:00.0"), b("06:00.1")]
    );
    assert_eq!(amd.groups[&GroupId(16)].domain_type.as_deref(), Some("DMA"));
    assert_eq!(amd.iommu.units, vec!["ivhd0".to_string()]);
    let (_d, intel) = load("tcg-intel");
    assert_eq!(
        intel.groups[&GroupId(14)].domain_type.as_deref(),
        Some("identity")
    );
    // 09:00.0 sits below the switch: root port 00:07.0 (intel 00:07.0 too), upstream, downstream.
    let chain = &amd.device(b("09:00.0")).unwrap().upstream;
    assert_eq!(chain, &vec![b("00:07.0"), b("07:00.0"), b("08:00.0")]);
}

/// VFIO hot reset (docs/rules.md: "when one owner holds every affected group"): the
/// kernel hot-reset 05:01.0 behind the PCIe-to-PCI bridge together with 05:02.0.
/// With both requested, no-reset is a warning; with one, a failure.
#[test]
fn bridge_hot_reset_is_a_warning_only_when_every_affected_device_is_requested() {
    for run in RUNS {
        let (_d, host) = load(run);
        let sev = |bdfs: &[Bdf]| {
            let r = check_bdfs(&host, bdfs).unwrap();
            r.devices[0]
                .findings
                .iter()
                .find(|f| f.code == Code::NoReset)
                .map(|f| f.severity)
        };
        assert_eq!(
            sev(&[b("05:01.0"), b("05:02.0")]),
            Some(Severity::Warn),
            "{run}"
        );
        assert_eq!(sev(&[b("05:01.0")]), Some(Severity::Fail), "{run}");
    }
}

/// A group is the unit of assignment (docs/rules.md): on a real 6.12 guest's tree
/// (VGA at 01:00.0 and HD audio at 01:00.1 in one group), the audio function
/// asked for alone fails `group-shared`, and the advice is the slot form rather
/// than moving the card; asked for as the slot, the group rule passes.
#[test]
fn audio_function_alone_is_told_to_ask_for_the_slot() {
    for root in ["vm-intel-vga-audio", "vm-amd-vga-audio"] {
        let host = Host::load(repo().join("tests/fixtures").join(root)).unwrap();
        let one = |spec: &str| check(&host, &[spec.parse::<DeviceSpec>().unwrap()]).unwrap();
        let r = one("01:00.1");
        let f = r.devices[0]
            .findings
            .iter()
            .find(|f| f.code == Code::GroupShared)
            .unwrap_or_else(|| panic!("{root}: no group-shared: {:?}", r.devices[0].findings));
        assert_eq!(f.severity, Severity::Fail);
        assert!(f.message.contains("same card"), "{root}: {}", f.message);
        assert!(
            f.message.contains("passthru check 0000:01:00`"),
            "{root}: {}",
            f.message
        );
        assert!(
            !f.message.contains("move the card"),
            "{root}: {}",
            f.message
        );
        let r = one("01:00");
        assert_eq!(r.devices.len(), 2, "{root}");
        for d in &r.devices {
            assert!(
                d.findings.iter().all(|f| f.code != Code::GroupShared),
                "{root} {}: {:?}",
                d.bdf,
                d.findings
            );
        }
    }
}

/// VFIO's no-IOMMU mode (a real 6.12 guest without an IOMMU, booted with
/// `vfio.enable_unsafe_noiommu_mode=1`, both NVMe and e1000e on vfio-pci): the kernel
/// makes groups named `vfio-noiommu`, which are no IOMMU. The model sees the groups,
/// marks them, and calls the IOMMU off; `check` fails `iommu-off` naming the mode;
/// the inventory (`list`) agrees.
#[test]
fn noiommu_groups_are_not_an_iommu() {
    let root = repo().join("tests/fixtures/vm-noiommu-rootports");
    let host = Host::load(&root).unwrap();
    assert!(host.notes.is_empty(), "{:?}", host.notes);
    assert_eq!(host.groups.len(), 2);
    assert!(host.groups.values().all(|g| g.noiommu), "{:?}", host.groups);
    assert!(host.iommu.units.is_empty());
    assert!(!host.iommu.groups_present);
    assert!(!host.iommu.active());
    let inv = Host::load_stage(&root, Stage::Inventory).unwrap();
    assert_eq!(inv.iommu, host.iommu);
    assert_eq!(inv.groups.len(), 2);
    assert!(inv.groups.values().all(|g| g.noiommu), "{:?}", inv.groups);
    for spec in ["01:00.0", "02:00.0"] {
        let r = check(&host, &[spec.parse::<DeviceSpec>().unwrap()]).unwrap();
        assert_eq!(r.devices[0].verdict, Verdict::Fail, "{spec}");
        let off = r
            .host
            .findings
            .iter()
            .chain(&r.devices[0].findings)
            .find(|f| f.code == Code::IommuOff)
            .unwrap_or_else(|| panic!("{spec}: no iommu-off"));
        assert_eq!(off.severity, Severity::Fail);
        assert!(off.message.contains("no-IOMMU mode"), "{}", off.message);
        assert!(
            off.evidence.iter().any(|e| e.contains("vfio-noiommu")),
            "{:?}",
            off.evidence
        );
    }
}
