//! Crashes found by the `vfio_info` fuzz target.

use passthru_vfio_core::info::{cap_chain, parse_iommu_info, parse_region_info};

fn push32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_ne_bytes());
}

/// An IOMMU-info answer (24-byte header, CAPS flag, cap_offset 24) whose first
/// capability's `next` (28) points inside that capability's own 8-byte header. The
/// module contract is "next points strictly forward, so a chain of N bytes has fewer
/// than N/8 links"; the kernel appends each capability after the previous one
/// (`vfio_info_cap_add`), so capabilities never overlap. Found by fuzzing as
/// `CapHeader { len: 2 }`; before the fix `cap_chain` returned a phantom capability
/// (id 0x1c, made of the first one's `next` field) and `parse_iommu_info` accepted it.
fn overlapping_iommu_info() -> Vec<u8> {
    let mut b = Vec::new();
    push32(&mut b, 40); // argsz
    push32(&mut b, 0x2); // flags: CAPS
    b.extend_from_slice(&0x1000u64.to_ne_bytes()); // iova_pgsizes
    push32(&mut b, 24); // cap_offset
    push32(&mut b, 0); // pad
    b.extend_from_slice(&0x99u16.to_ne_bytes()); // cap id
    b.extend_from_slice(&1u16.to_ne_bytes()); // version
    push32(&mut b, 28); // next: inside this header
    push32(&mut b, 0);
    push32(&mut b, 0);
    assert_eq!(b.len(), 40);
    b
}

#[test]
fn cap_chain_rejects_a_next_pointer_inside_the_current_header() {
    let b = overlapping_iommu_info();
    let chain = cap_chain(&b, 24, 24);
    assert!(
        chain.is_err(),
        "overlapping capabilities accepted: {chain:?}"
    );
    let info = parse_iommu_info(&b);
    assert!(info.is_err(), "overlapping capabilities accepted: {info:?}");
}

/// The same defect as a bound: a region-info answer (32-byte header) whose chain
/// steps 4 bytes at a time (each capability's `next` field doubles as the next one's
/// id and version) gives 15 links in 96 bytes, not "fewer than N/8" (12).
#[test]
fn cap_chain_has_fewer_than_len_over_8_links() {
    let mut b = vec![0u8; 96];
    b[0..4].copy_from_slice(&96u32.to_ne_bytes()); // argsz
    b[4..8].copy_from_slice(&0x8u32.to_ne_bytes()); // flags: CAPS
    b[12..16].copy_from_slice(&32u32.to_ne_bytes()); // cap_offset
    for p in (36..=88).step_by(4) {
        b[p..p + 4].copy_from_slice(&(p as u32).to_ne_bytes());
    }
    let links = cap_chain(&b, 32, 32).map(|c| c.len());
    assert!(
        links.as_ref().map_or(true, |&n| n < b.len() / 8),
        "{links:?} links in {} bytes",
        b.len()
    );
    let region = parse_region_info(&b);
    assert!(
        region.is_err(),
        "overlapping capabilities accepted: {region:?}"
    );
}
