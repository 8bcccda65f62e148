//! The `arbitrary` and `proptest` generators: every generated device builds, decodes
//! back to what was generated (header, ids, both capability chains in order), and
//! every capability decoder accepts it; the generators reach every kind they describe.

use arbitrary::{Arbitrary, Unstructured};
use passthru_pci_ids::caps::{CapabilityId, ExtCapabilityId};
use passthru_pci_ids::config::HeaderType;
use passthru_pci_ids::generate::{FromSeed, FromWords, GenDevice, GenHeader};
use passthru_pci_ids::ConfigSpace;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Check one generated device against its bytes; returns them.
fn check(dev: &GenDevice) -> Vec<u8> {
    let bytes = dev.config().expect("a generated device builds");
    assert_eq!(bytes.len(), if dev.is_pcie() { 4096 } else { 256 });
    let c = ConfigSpace::new_checked(&bytes[..]).unwrap();
    assert_eq!((c.vendor_id(), c.device_id()), (dev.vendor, dev.device));
    assert!(dev.vendor.0 != 0 && dev.vendor.0 != 0xffff);
    assert_eq!(c.revision(), dev.revision);
    assert_eq!(c.multifunction(), dev.multifunction);
    match dev.header {
        GenHeader::Endpoint(class) => {
            assert_eq!(c.header_type(), HeaderType::Normal);
            assert_eq!(c.class_code(), class);
        }
        GenHeader::Bridge {
            primary,
            secondary,
            subordinate,
        } => {
            assert_eq!(c.header_type(), HeaderType::Bridge);
            assert!(primary < secondary && secondary <= subordinate);
            let b = c.bridge_buses().unwrap();
            assert_eq!(
                (b.primary, b.secondary, b.subordinate),
                (primary, secondary, subordinate)
            );
        }
    }
    let std: Vec<_> = c.capabilities().map(|r| r.unwrap()).collect();
    assert_eq!(std.iter().map(|c| c.id).collect::<Vec<_>>(), dev.cap_ids());
    let ext: Vec<_> = c.extended_capabilities().map(|r| r.unwrap()).collect();
    assert_eq!(
        ext.iter().map(|c| c.id).collect::<Vec<_>>(),
        dev.ext_cap_ids()
    );
    for cap in &std {
        if let Some(d) = cap.decode(&bytes) {
            d.unwrap_or_else(|e| panic!("{:?} does not decode: {e}", cap.id));
        }
    }
    for cap in &ext {
        if let Some(d) = cap.decode(&bytes) {
            d.unwrap_or_else(|e| panic!("{:?} does not decode: {e}", cap.id));
        }
    }
    bytes
}

proptest! {
    #[test]
    fn every_proptest_device_builds_and_decodes_back(dev in any::<GenDevice>()) {
        check(&dev);
    }
}

/// Deterministic fuzzer-like bytes.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    FromSeed::new(seed).bytes(n)
}

#[test]
fn every_arbitrary_device_builds_and_decodes_back_and_every_kind_is_reached() {
    let mut std_ids = BTreeSet::new();
    let mut ext_ids = BTreeSet::new();
    let (mut bridges, mut endpoints) = (0, 0);
    for seed in 0..3000u64 {
        let data = bytes(seed, 64 + (seed as usize % 512));
        let dev = GenDevice::arbitrary(&mut Unstructured::new(&data)).unwrap();
        check(&dev);
        std_ids.extend(dev.cap_ids().into_iter().map(u8::from));
        ext_ids.extend(dev.ext_cap_ids().into_iter().map(u16::from));
        match dev.header {
            GenHeader::Bridge { .. } => bridges += 1,
            GenHeader::Endpoint(_) => endpoints += 1,
        }
    }
    assert!(
        bridges > 100 && endpoints > 100,
        "{bridges} bridges, {endpoints} endpoints"
    );
    let want_std: BTreeSet<u8> = [
        CapabilityId::PowerManagement,
        CapabilityId::Msi,
        CapabilityId::MsiX,
        CapabilityId::PciExpress,
        CapabilityId::AdvancedFeatures,
        CapabilityId::VendorSpecific,
    ]
    .into_iter()
    .map(u8::from)
    .collect();
    assert_eq!(std_ids, want_std);
    let want_ext: BTreeSet<u16> = [
        ExtCapabilityId::Acs,
        ExtCapabilityId::Aer,
        ExtCapabilityId::Ari,
        ExtCapabilityId::Ats,
        ExtCapabilityId::SrIov,
        ExtCapabilityId::ResizableBar,
        ExtCapabilityId::Dsn,
        ExtCapabilityId::Pasid,
        ExtCapabilityId::Pri,
        ExtCapabilityId::Dpc,
        ExtCapabilityId::Ltr,
        ExtCapabilityId::L1PmSubstates,
    ]
    .into_iter()
    .map(u16::from)
    .collect();
    assert_eq!(ext_ids, want_ext);
}

#[test]
fn no_choices_give_the_simplest_device() {
    let dev = GenDevice::generate(&mut FromWords::new(&[]));
    assert!(matches!(dev.header, GenHeader::Endpoint(_)));
    assert!(dev.caps.is_empty() && dev.ext_caps.is_empty());
    assert_eq!(check(&dev).len(), 256);
    let empty = GenDevice::arbitrary(&mut Unstructured::new(&[])).unwrap();
    assert_eq!(empty, dev);
}

#[test]
fn a_generated_endpoint_never_has_a_bridge_header() {
    for seed in 0..500u64 {
        let words: Vec<u32> = bytes(seed, 400)
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let dev = GenDevice::generate_endpoint(&mut FromWords::new(&words));
        assert!(matches!(dev.header, GenHeader::Endpoint(_)));
        check(&dev);
    }
}
