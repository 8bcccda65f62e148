//! Generated devices (`passthru_pci_ids::generate::GenDevice`, feature `arbitrary`):
//! every device the generator makes from fuzzer bytes builds, and the decoders read it
//! back as generated: header, ids, both capability chains in order, every capability
//! decoding without error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_pci_ids::config::HeaderType;
use passthru_pci_ids::generate::{GenDevice, GenHeader};
use passthru_pci_ids::ConfigSpace;

fuzz_target!(|dev: GenDevice| {
    let bytes = dev.config().expect("a generated device builds");
    let c = ConfigSpace::new_checked(&bytes[..]).expect("a generated length is valid");
    assert_eq!((c.vendor_id(), c.device_id()), (dev.vendor, dev.device));
    let want = match dev.header {
        GenHeader::Endpoint(_) => HeaderType::Normal,
        GenHeader::Bridge { .. } => HeaderType::Bridge,
    };
    assert_eq!(c.header_type(), want);
    let std: Vec<_> = c.capabilities().map(|r| r.expect("std walk")).collect();
    assert_eq!(std.iter().map(|c| c.id).collect::<Vec<_>>(), dev.cap_ids());
    let ext: Vec<_> = c
        .extended_capabilities()
        .map(|r| r.expect("ext walk"))
        .collect();
    assert_eq!(
        ext.iter().map(|c| c.id).collect::<Vec<_>>(),
        dev.ext_cap_ids()
    );
    for d in std.iter().filter_map(|c| c.decode(&bytes)) {
        d.expect("a generated capability decodes");
    }
    for d in ext.iter().filter_map(|c| c.decode(&bytes)) {
        d.expect("a generated extended capability decodes");
    }
});
