//! The host model's readers of sysfs/procfs/etc text (`iommu-groups`): attribute
//! parsers (hex ids, class, `reset_method`, `resource`, `boot_vga`, counts, ...),
//! `proc/cmdline`, `etc/default/grub`, modprobe.d, the binary `config`, then the
//! verdicts and the snapshot round trip.
//!
//! The parsers are private to `iommu-groups`, so they are reached the way the CLI reaches
//! them: a fixture tree (root port 00:01.0 and a GPU 01:00.0 in group 2) whose GPU
//! attribute files hold fuzzer bytes, loaded with `Host::load`.
//!
//! Checks: loading never fails (only a missing `sys/bus/pci/devices` may) and never
//! panics; the GPU is in the model, in group 2 and alone in it (or, without readable
//! ids, left out with a note naming it); its resources are
//! bounded by the bytes of the `resource` file; `check_bdfs` returns one report for it
//! and the report serializes; a snapshot of the tree loads to the same model; the
//! inventory stage (`Host::load_stage`, the listing's one-call reads of the same
//! attribute files) agrees with the full stage on every device's ids, class, driver and
//! group.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_iommu_groups::fixture::{Fixture, FixtureDevice, IommuKind};
use passthru_iommu_groups::{check_bdfs, snapshot, CpuVendor, Host, Stage};
use passthru_pci_ids::Bdf;

#[path = "common/scratch.rs"]
mod scratch;
use scratch::{fresh, scratch};

/// Attribute files written from the input, in this order; the rest is the `config`.
const ATTRS: [&str; 14] = [
    "vendor",
    "device",
    "class",
    "revision",
    "subsystem_vendor",
    "subsystem_device",
    "reset_method",
    "boot_vga",
    "sriov_totalvfs",
    "sriov_numvfs",
    "numa_node",
    "power_state",
    "resource",
    "driver_override",
];

fuzz_target!(|data: &[u8]| {
    // NUL-separated: the 14 attributes, proc/cmdline, etc/default/grub, a modprobe.d
    // file, then the config bytes (which may hold NULs).
    let mut parts = data.splitn(ATTRS.len() + 4, |&b| b == 0);
    let attrs: Vec<&[u8]> = ATTRS
        .iter()
        .map(|_| parts.next().unwrap_or_default())
        .collect();
    let cmdline = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let grub = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let modprobe = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let config = parts.next().unwrap_or_default().to_vec();

    let port: Bdf = "00:01.0".parse().unwrap();
    let gpu: Bdf = "01:00.0".parse().unwrap();
    let mut dev = FixtureDevice::from_config(gpu, config)
        .parent(port)
        .group(2);
    dev.ids = None; // the attribute files below are the ids
    for (name, bytes) in ATTRS.iter().zip(&attrs) {
        if !bytes.is_empty() {
            dev = dev.attr(name, bytes.to_vec());
        }
    }
    let fx = Fixture::new(CpuVendor::Amd, IommuKind::Amd)
        .device(FixtureDevice::root_port(port, 1).group(1))
        .device(dev)
        .cmdline(&cmdline)
        .file("etc/default/grub", &grub)
        .file("etc/modprobe.d/fuzz.conf", &modprobe);

    let root = scratch().join("root");
    let snap = scratch().join("snap");
    fresh(&root);
    fresh(&snap);
    fx.write(&root).expect("fixture write");

    let host = Host::load(&root).unwrap_or_else(|e| panic!("load failed: {e}"));
    match host.device(gpu) {
        // Documented: a device without a readable vendor/device id is ignored, with a note.
        None => assert!(
            host.notes.iter().any(|n| n.path.ends_with("0000:01:00.0")),
            "the GPU is missing from the model without a note: {:?}",
            host.notes
        ),
        Some(d) => {
            let g = host.group_of(gpu).expect("the GPU has no group");
            assert_eq!(g.id.0, 2);
            assert!(g.devices.contains(&gpu) && g.devices.len() == 1, "{g:?}");
            let resource_len = attrs[12].len();
            assert!(
                d.resources.len() <= resource_len / 2 + 1,
                "{} resources",
                d.resources.len()
            );
            for r in &d.resources {
                let _ = r.size();
            }
            let _ = (
                d.parent(),
                d.on_root_bus(),
                d.is_bridge(),
                d.is_any_bridge(),
            );
            let _ = d.is_vfio_bound();
        }
    }
    let _ = (
        host.bus_peers(gpu),
        host.below(port),
        host.slot_siblings(gpu),
    );
    let _ = (
        host.boot.vfio_pci_ids(),
        host.boot.softdeps_on_vfio(),
        host.boot.blacklisted(),
    );

    let inv = Host::load_stage(&root, Stage::Inventory)
        .unwrap_or_else(|e| panic!("inventory failed: {e}"));
    assert_eq!(
        inv.devices.keys().collect::<Vec<_>>(),
        host.devices.keys().collect::<Vec<_>>()
    );
    for (b, l) in &inv.devices {
        let d = &host.devices[b];
        assert_eq!(
            (l.vendor, l.device, l.class, &l.driver, l.iommu_group),
            (d.vendor, d.device, d.class, &d.driver, d.iommu_group),
            "{b}: the inventory and full stages disagree"
        );
    }
    assert_eq!(inv.iommu, host.iommu);

    // An address the host does not have is an `unknown-device` error, never an
    // empty report.
    let report = match check_bdfs(&host, &[gpu]) {
        Ok(r) => r,
        Err(e) => {
            assert!(host.device(gpu).is_none(), "{gpu} is on the host: {e}");
            assert_eq!(e.code(), Some("unknown-device"));
            check_bdfs(&host, &[]).expect("an empty request is no error")
        }
    };
    assert_eq!(
        report.devices.len(),
        usize::from(host.device(gpu).is_some())
    );
    let _ = report.worst();
    serde_json::to_string(&report).expect("report serializes");
    serde_json::to_string(&host).expect("host serializes");

    let (mut snapped, _) =
        snapshot(&root, &snap).unwrap_or_else(|e| panic!("snapshot failed: {e}"));
    let mut again = Host::load(&snap).unwrap_or_else(|e| panic!("snapshot does not load: {e}"));
    assert_eq!(again, snapped, "the snapshot loads to a different model");
    // Its marker says how it was taken; the rest is the model.
    assert!(snapped.snapshot.take().is_some() && again.snapshot.take().is_some());
    assert_eq!(snapped, host, "snapshot() loaded a different model");
});
