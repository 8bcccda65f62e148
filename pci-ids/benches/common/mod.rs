//! The two full decodes timed side by side, shared by the criterion bench
//! (`benches/decode.rs`) and the quick timer (`examples/time_decode.rs`).

use passthru_pci_ids::ConfigSpace;
use std::hint::black_box;

/// Everything passthru decodes: header fields, BARs, each capability's decoder.
pub fn ours(bytes: &[u8]) -> usize {
    let c = ConfigSpace::new_checked(bytes).unwrap();
    black_box((c.vendor_id(), c.device_id(), c.class_code(), c.command()));
    black_box((
        c.status(),
        c.header_type(),
        c.subsystem_id(),
        c.expansion_rom(),
    ));
    black_box((c.bridge_buses(), c.bridge_control(), c.interrupt_pin()));
    let mut n = 0;
    for (_, bar) in c.bars() {
        black_box(bar);
    }
    for cap in c.capabilities() {
        let cap = cap.unwrap();
        black_box(cap.decode(bytes));
        n += 1;
    }
    for cap in c.extended_capabilities() {
        let cap = cap.unwrap();
        black_box(cap.decode(bytes));
        n += 1;
    }
    n
}

/// The same through pcics: header, capabilities, extended capabilities.
pub fn theirs(bytes: &[u8]) -> usize {
    let header = pcics::Header::try_from(&bytes[..pcics::DDR_OFFSET]).unwrap();
    let mut n = 0;
    for cap in pcics::Capabilities::new(&bytes[pcics::DDR_OFFSET..pcics::ECS_OFFSET], &header) {
        black_box(&cap);
        n += 1;
    }
    if bytes.len() > pcics::ECS_OFFSET {
        for cap in pcics::ExtendedCapabilities::new(&bytes[pcics::ECS_OFFSET..]) {
            black_box(&cap);
            n += 1;
        }
    }
    black_box(header);
    n
}
