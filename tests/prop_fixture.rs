//! Cross-crate property: a generated fixture root (random topology of root ports,
//! endpoints and multifunction devices, random IOMMU groups and drivers) always loads
//! (`iommu-groups`, reading config spaces built by `pci-ids`) into a model whose devices,
//! parents, drivers and groups are exactly the generated ones, and whose snapshot loads
//! to the same model.

use passthru_iommu_groups::fixture::{Fixture, FixtureDevice, IommuKind};
use passthru_iommu_groups::{snapshot, CpuVendor, Host};
use passthru_pci_ids::Bdf;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const DRIVERS: [Option<&str>; 5] = [
    None,
    Some("vfio-pci"),
    Some("amdgpu"),
    Some("nvidia"),
    Some("snd_hda_intel"),
];

/// One endpoint function: its kind (GPU or audio), driver (index into DRIVERS) and
/// group (index into a small pool, or none).
#[derive(Debug, Clone)]
struct Func {
    gpu: bool,
    driver: usize,
    group: Option<u8>,
}

/// A root port (in a group or not) and the functions of the single device behind it.
#[derive(Debug, Clone)]
struct Port {
    group: Option<u8>,
    funcs: Vec<Func>,
}

fn func() -> impl Strategy<Value = Func> {
    (
        any::<bool>(),
        0..DRIVERS.len(),
        prop::option::weighted(0.9, 0u8..6),
    )
        .prop_map(|(gpu, driver, group)| Func { gpu, driver, group })
}

fn topology() -> impl Strategy<Value = (Vec<Port>, Vec<Func>)> {
    let port = (
        prop::option::weighted(0.9, 0u8..6),
        prop::collection::vec(func(), 0..4),
    )
        .prop_map(|(group, funcs)| Port { group, funcs });
    (
        prop::collection::vec(port, 1..5),
        prop::collection::vec(func(), 0..3),
    )
}

fn bdf(bus: u8, device: u8, function: u8) -> Bdf {
    Bdf::new(0, bus, device, function).unwrap()
}

/// What the generator promises for one device: (parent bridge, driver, IOMMU group).
type Expected = BTreeMap<Bdf, (Option<Bdf>, Option<String>, Option<u32>)>;

/// Build the fixture and the expected (devices -> (parent, driver, group)) map.
fn build(ports: &[Port], root_funcs: &[Func]) -> (Fixture, Expected) {
    let mut fx = Fixture::new(CpuVendor::Amd, IommuKind::Amd);
    let mut want = BTreeMap::new();
    let endpoint = |at: Bdf, f: &Func, parent: Option<Bdf>| {
        let mut d = if f.gpu {
            FixtureDevice::gpu(at, 0x1002, 0x73bf)
        } else {
            FixtureDevice::hdmi_audio(at, 0x1002, 0xab28)
        };
        if let Some(p) = parent {
            d = d.parent(p);
        }
        if let Some(drv) = DRIVERS[f.driver] {
            d = d.driver(drv);
        }
        if let Some(g) = f.group {
            d = d.group(u32::from(g));
        }
        d
    };
    for (i, p) in ports.iter().enumerate() {
        let at = bdf(0, 1 + i as u8, 0);
        let secondary = 1 + i as u8;
        let mut rp = FixtureDevice::root_port(at, secondary);
        if let Some(g) = p.group {
            rp = rp.group(u32::from(g));
        }
        fx = fx.device(rp);
        want.insert(at, (None, None, p.group.map(u32::from)));
        for (fnum, f) in p.funcs.iter().enumerate() {
            let e = bdf(secondary, 0, fnum as u8);
            fx = fx.device(endpoint(e, f, Some(at)));
            want.insert(
                e,
                (
                    Some(at),
                    DRIVERS[f.driver].map(String::from),
                    f.group.map(u32::from),
                ),
            );
        }
    }
    for (fnum, f) in root_funcs.iter().enumerate() {
        let e = bdf(0, 0x1f, fnum as u8);
        fx = fx.device(endpoint(e, f, None));
        want.insert(
            e,
            (
                None,
                DRIVERS[f.driver].map(String::from),
                f.group.map(u32::from),
            ),
        );
    }
    (fx, want)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn generated_topology_loads_to_the_generated_model((ports, root_funcs) in topology()) {
        let (fx, want) = build(&ports, &root_funcs);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fx.write(&root).unwrap();
        let host = Host::load(&root).unwrap();

        let got: BTreeSet<Bdf> = host.devices.keys().copied().collect();
        let expected: BTreeSet<Bdf> = want.keys().copied().collect();
        prop_assert_eq!(&got, &expected);
        for (b, (parent, driver, group)) in &want {
            let d = &host.devices[b];
            prop_assert_eq!(d.parent(), *parent, "parent of {}", b);
            prop_assert_eq!(d.on_root_bus(), parent.is_none(), "{}", b);
            prop_assert_eq!(&d.driver, driver, "driver of {}", b);
            prop_assert_eq!(d.iommu_group.map(u32::from), *group, "group of {}", b);
            prop_assert_eq!(host.group_of(*b).map(|g| g.id.0), *group, "group_of {}", b);
        }

        // Groups: exactly the generated ones, each with exactly its members, sorted.
        let mut groups: BTreeMap<u32, Vec<Bdf>> = BTreeMap::new();
        for (b, (_, _, g)) in &want {
            if let Some(g) = g {
                groups.entry(*g).or_default().push(*b);
            }
        }
        let got_groups: BTreeMap<u32, Vec<Bdf>> =
            host.groups.iter().map(|(id, g)| (id.0, g.devices.clone())).collect();
        prop_assert_eq!(got_groups, groups);

        // Bus peers and slot siblings follow the topology.
        for (i, p) in ports.iter().enumerate() {
            let secondary = 1 + i as u8;
            if !p.funcs.is_empty() {
                let first = bdf(secondary, 0, 0);
                prop_assert_eq!(host.slot_siblings(first).len() + 1, p.funcs.len(), "siblings of {}", first);
                prop_assert_eq!(host.below(bdf(0, 1 + i as u8, 0)).len(), p.funcs.len());
            }
        }

        // A snapshot of what was read loads to the same model.
        let snap = dir.path().join("snap");
        let (mut snapped, _) = snapshot(&root, &snap).unwrap();
        let mut replayed = Host::load(&snap).unwrap();
        prop_assert_eq!(&replayed, &snapped);
        // The marker says how the snapshot was taken; the rest is the model.
        prop_assert!(snapped.snapshot.take().is_some());
        replayed.snapshot = None;
        prop_assert_eq!(&snapped, &host);
        prop_assert_eq!(replayed, host);
    }
}
