//! The `arbitrary` and `proptest` host generators: every generated host writes, loads
//! with every generated function in the model (its parent, group and driver as
//! generated), checks without error, and the generators reach every shape they
//! describe. A builder that does not fit is an error from `FixtureDevice::from_builder`,
//! never a panic.

use arbitrary::{Arbitrary, Unstructured};
use passthru_iommu_groups::fixture::{FixtureDevice, IommuKind};
use passthru_iommu_groups::generate::GenHost;
use passthru_iommu_groups::{check_bdfs, Host};
use passthru_pci_ids::builder::{BuildError, ConfigBuilder};
use passthru_pci_ids::generate::FromSeed;
use passthru_pci_ids::{ClassCode, DeviceId, VendorId};
use proptest::prelude::*;

fn check(host: &GenHost) {
    let dir = tempfile::tempdir().unwrap();
    host.fixture.write(dir.path()).unwrap();
    let model = Host::load(dir.path()).unwrap();
    assert_eq!(model.devices.len(), host.functions.len());
    for f in &host.functions {
        let d = model
            .device(f.bdf)
            .unwrap_or_else(|| panic!("{} missing from the model", f.bdf));
        assert_eq!(d.parent(), f.parent, "{}", f.bdf);
        assert_eq!(d.driver, f.driver, "{}", f.bdf);
        assert_eq!(model.group_of(f.bdf).map(|g| g.id.0), f.group, "{}", f.bdf);
        if let Some(dev) = &f.device {
            assert_eq!((d.vendor, d.device), (dev.vendor, dev.device));
        }
    }
    let bdfs: Vec<_> = host.functions.iter().map(|f| f.bdf).collect();
    let report = check_bdfs(&model, &bdfs).unwrap();
    assert_eq!(report.devices.len(), bdfs.len());
    serde_json::to_string(&report).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn every_proptest_host_writes_loads_and_checks(host in any::<GenHost>()) {
        check(&host);
    }
}

/// Deterministic fuzzer-like bytes.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    FromSeed::new(seed).bytes(n)
}

#[test]
fn arbitrary_hosts_load_and_reach_every_shape() {
    let (mut intel, mut amd, mut none, mut fw) = (0, 0, 0, 0);
    let (mut shared, mut below_ports, mut integrated) = (0, 0, 0);
    for seed in 0..60u64 {
        let data = bytes(seed, 2048);
        let host = GenHost::arbitrary(&mut Unstructured::new(&data)).unwrap();
        check(&host);
        match host.fixture.iommu {
            IommuKind::Intel => intel += 1,
            IommuKind::Amd => amd += 1,
            IommuKind::None => none += 1,
            _ => fw += 1,
        }
        for f in &host.functions {
            if f.device.is_some() {
                if f.parent.is_some() {
                    below_ports += 1;
                    let peers = host
                        .functions
                        .iter()
                        .filter(|o| o.bdf != f.bdf && o.group.is_some() && o.group == f.group)
                        .count();
                    shared += usize::from(peers > 0);
                } else {
                    integrated += 1;
                }
            }
        }
    }
    assert!(
        intel > 0 && amd > 0 && none > 0 && fw > 0,
        "{intel} {amd} {none} {fw}"
    );
    assert!(shared > 0 && below_ports > shared && integrated > 0);
}

#[test]
fn no_choices_give_a_host_bridge_alone() {
    let host = GenHost::arbitrary(&mut Unstructured::new(&[])).unwrap();
    assert_eq!(host.fixture.iommu, IommuKind::Amd);
    assert_eq!(host.functions.len(), 1);
    check(&host);
}

#[test]
fn a_builder_that_does_not_fit_is_an_error_not_a_panic() {
    let at = "01:00.0".parse().unwrap();
    let b = ConfigBuilder::endpoint(
        VendorId(0x10de),
        DeviceId(0x1b80),
        ClassCode::from_u32(0x030000),
    )
    .with_config_len(100);
    assert!(matches!(
        FixtureDevice::from_builder(at, &b),
        Err(BuildError::BadLength { len: 100 })
    ));
    // 30 vendor-specific capabilities of 32 bytes cannot fit in 192 bytes.
    let mut b = ConfigBuilder::endpoint(
        VendorId(0x10de),
        DeviceId(0x1b80),
        ClassCode::from_u32(0x030000),
    );
    for _ in 0..30 {
        b = b.with_vendor_specific(32);
    }
    assert!(matches!(
        FixtureDevice::from_builder(at, &b),
        Err(BuildError::NoRoom { .. })
    ));
}
