//! Snapshots: capturing then loading gives the same model;
//! the committed fixture trees are what their generators write.

mod common;

use common::*;
use passthru_iommu_groups::fixture::scenario_amd;
use passthru_iommu_groups::{snapshot, Error, Host};

#[test]
fn snapshot_of_a_fixture_loads_to_the_same_model() {
    let src = tempfile::tempdir().unwrap();
    scenario_amd().write(src.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (host, st) = snapshot(src.path(), &out.path().join("snap")).unwrap();
    assert!(st.files > 100 && st.links > 20, "{st:?}");
    let mut again = Host::load(out.path().join("snap")).unwrap();
    assert_eq!(again, host);
    // Taken by whoever runs the tests: the marker says which.
    let info = again
        .snapshot
        .take()
        .expect("the snapshot's marker is read");
    assert_eq!(info.as_root, st.as_root);
    assert_eq!(again, Host::load(src.path()).unwrap());
}

#[test]
fn snapshot_of_captures_loads_to_the_same_model() {
    for run in ["tcg-amd", "tcg-intel"] {
        let src = tempfile::tempdir().unwrap();
        capture_fixture(run).write(src.path()).unwrap();
        let out = tempfile::tempdir().unwrap();
        let (host, _) = snapshot(src.path(), &out.path().join("s")).unwrap();
        assert_eq!(Host::load(out.path().join("s")).unwrap(), host, "{run}");
    }
}

/// This machine's live root: capture, load the capture, compare with loading `/`.
#[test]
fn snapshot_of_the_live_root_loads_to_the_same_model() {
    let out = tempfile::tempdir().unwrap();
    let (host, _) = snapshot(std::path::Path::new("/"), &out.path().join("live")).unwrap();
    let replay = Host::load(out.path().join("live")).unwrap();
    assert_eq!(replay, host);
    assert!(!host.devices.is_empty());
}

#[test]
fn snapshot_refuses_a_non_empty_directory() {
    let src = tempfile::tempdir().unwrap();
    scenario_amd().write(src.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("keep"), "x").unwrap();
    let e = snapshot(src.path(), out.path()).unwrap_err();
    assert!(matches!(e, Error::Write { .. }), "{e}");
    assert_eq!(std::fs::read(out.path().join("keep")).unwrap(), b"x");
}

/// tests/fixtures/tcg-{amd,intel} are what the capture converter writes
/// (`PASSTHRU_BLESS=1` regenerates them).
#[test]
fn committed_capture_trees_match_generator() {
    for run in ["tcg-amd", "tcg-intel"] {
        let f = capture_fixture(run);
        if bless() {
            bless_tree(run, &f);
        }
        let d = tempfile::tempdir().unwrap();
        f.write(d.path()).unwrap();
        let committed = Host::load(repo().join("tests/fixtures").join(run)).unwrap();
        assert_eq!(committed, Host::load(d.path()).unwrap(), "{run}");
    }
}

/// tests/fixtures/host-noiommu is a snapshot of a live machine without an IOMMU
/// (`PASSTHRU_BLESS=1` re-takes it from this machine's `/`). Replaying it keeps
/// the model; the machine had no IOMMU.
#[test]
fn committed_live_snapshot_replays() {
    let dir = repo().join("tests/fixtures/host-noiommu");
    if bless() {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        snapshot(std::path::Path::new("/"), &dir).unwrap();
    }
    let host = Host::load(&dir).unwrap();
    assert!(!host.iommu.active());
    assert!(!host.devices.is_empty());
    let out = tempfile::tempdir().unwrap();
    let (h2, _) = snapshot(&dir, &out.path().join("again")).unwrap();
    assert_eq!(unmarked(h2), unmarked(host.clone()));
    assert_eq!(
        unmarked(Host::load(out.path().join("again")).unwrap()),
        unmarked(host)
    );
}

/// The model without what a snapshot's marker adds (how it was taken): the
/// committed trees predate the marker.
fn unmarked(mut h: Host) -> Host {
    h.snapshot = None;
    h
}

/// The VM harness' fixtures (`passthru snapshot` taken inside real 6.12 guests)
/// load without a single absent fact, and re-snapshot to the same model.
#[test]
fn vm_guest_snapshots_load_cleanly_and_replay() {
    let mut seen = 0;
    for e in std::fs::read_dir(repo().join("tests/fixtures")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("vm-") {
            continue;
        }
        let host = Host::load(&p).unwrap();
        assert!(host.notes.is_empty(), "{name}: {:?}", host.notes);
        // Every guest had an emulated IOMMU except the one in VFIO's no-IOMMU mode.
        assert_eq!(
            host.iommu.active(),
            name != "vm-noiommu-rootports",
            "{name}"
        );
        let out = tempfile::tempdir().unwrap();
        let (h2, _) = snapshot(&p, &out.path().join("s")).unwrap();
        let again = Host::load(out.path().join("s")).unwrap();
        assert_eq!(again, h2, "{name}");
        assert_eq!(unmarked(h2), unmarked(host.clone()), "{name}");
        seen += 1;
    }
    // Committed by the VM harness: seven topologies under each of two IOMMUs.
    assert!(seen >= 2, "only {seen} vm-* fixtures");
}

/// The fixture builder's SR-IOV links load as the kernel's: `physfn` names the PF.
#[test]
fn fixture_sriov_links_load() {
    use passthru_iommu_groups::fixture::{Fixture, FixtureDevice, IommuKind};
    use passthru_iommu_groups::CpuVendor;
    let b = |s: &str| s.parse::<passthru_pci_ids::Bdf>().unwrap();
    let nic = |bdf: &str| {
        FixtureDevice::from_builder(
            b(bdf),
            &passthru_pci_ids::builder::ConfigBuilder::endpoint(
                passthru_pci_ids::VendorId(0x8086),
                passthru_pci_ids::DeviceId(0x1521),
                passthru_pci_ids::ClassCode::from_u32(0x020000),
            )
            .with_pcie(passthru_pci_ids::caps::PortType::Endpoint, true),
        )
        .unwrap()
        .parent(b("00:01.0"))
    };
    let t = tempfile::tempdir().unwrap();
    Fixture::new(CpuVendor::Intel, IommuKind::Intel)
        .device(FixtureDevice::root_port(b("00:01.0"), 1).group(1))
        .device(nic("01:00.0").group(2).attr("sriov_totalvfs", "7\n"))
        .device(nic("01:10.0").group(3).physfn(b("01:00.0")))
        .device(nic("01:10.2").group(4).physfn(b("01:00.0")))
        .write(t.path())
        .unwrap();
    let h = Host::load(t.path()).unwrap();
    assert!(h.notes.is_empty(), "{:?}", h.notes);
    assert_eq!(h.device(b("01:10.2")).unwrap().physfn, Some(b("01:00.0")));
    assert_eq!(h.device(b("01:00.0")).unwrap().sriov_totalvfs, Some(7));
    let pf = std::fs::canonicalize(t.path().join("sys/bus/pci/devices/0000:01:00.0")).unwrap();
    assert_eq!(
        std::fs::canonicalize(pf.join("virtfn1")).unwrap(),
        std::fs::canonicalize(t.path().join("sys/bus/pci/devices/0000:01:10.2")).unwrap()
    );
}
