//! VFIO answer parsers (`vfio-core::info`): IOMMU info, device info, region info and
//! hot-reset info with their capability chains, all run over the same arbitrary buffer.
//!
//! Checks: no panic; a capability chain moves strictly forward, stays inside the buffer
//! and has fewer than len/8 links; no count is believed beyond the bytes present
//! (IOVA ranges, sparse mmap areas, dependent devices); fixed fields are read from their
//! offsets; every dependent device is a valid PCI address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_pci_ids::Bdf;
use passthru_vfio_core::info::{
    self, cap_chain, parse_device_info, parse_hot_reset_info, parse_iommu_info, parse_region_info,
    DeviceFlags, RegionFlags, DEVICE_INFO_LEN, HOT_RESET_INFO_LEN, IOMMU_INFO_LEN, REGION_INFO_LEN,
};

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().unwrap())
}

/// The bytes the parsers consider: truncated to `argsz` when that is shorter.
fn valid(b: &[u8]) -> &[u8] {
    match info::argsz(b) {
        Some(a) if (a as usize) < b.len() => &b[..a as usize],
        _ => b,
    }
}

fn chain(buf: &[u8], first: u32, header_len: usize) {
    match cap_chain(buf, first, header_len) {
        Ok(caps) => {
            assert!(
                caps.len() <= buf.len() / 8,
                "{} links in {} bytes",
                caps.len(),
                buf.len()
            );
            let mut prev = 0;
            for c in &caps {
                assert!(
                    c.offset >= header_len && c.offset > prev,
                    "{c:?} after {prev}"
                );
                assert!(
                    c.len >= 8 && c.offset + c.len <= buf.len(),
                    "{c:?} in {}",
                    buf.len()
                );
                prev = c.offset;
            }
            if first == 0 {
                assert!(caps.is_empty());
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = info::argsz(data);
    let v = valid(data);

    match parse_iommu_info(data) {
        Ok(i) => {
            assert!(v.len() >= IOMMU_INFO_LEN);
            assert_eq!(i.argsz, u32_at(v, 0));
            assert_eq!(i.flags, u32_at(v, 4));
            assert_eq!(i.iova_pgsizes, u64_at(v, 8));
            assert!(
                i.iova_ranges.len() * 16 <= v.len(),
                "{} ranges",
                i.iova_ranges.len()
            );
            assert!(i.other_caps.len() <= v.len() / 8);
            let p = i.min_page_size();
            assert!(p.is_power_of_two());
            if i.flags & info::IOMMU_INFO_CAPS == 0 {
                assert!(i.iova_ranges.is_empty() && i.dma_avail.is_none() && i.migration.is_none());
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if v.len() >= IOMMU_INFO_LEN {
        chain(v, u32_at(v, 16), IOMMU_INFO_LEN);
    }

    match parse_device_info(data) {
        Ok(d) => {
            assert!(v.len() >= DEVICE_INFO_LEN);
            assert_eq!(d.argsz, u32_at(v, 0));
            assert_eq!(
                d.flags.bits(),
                u32_at(v, 4),
                "device flags keep unknown bits"
            );
            assert_eq!((d.num_regions, d.num_irqs), (u32_at(v, 8), u32_at(v, 12)));
            if !d.flags.contains(DeviceFlags::CAPS) {
                assert!(d.caps.is_empty());
            }
            assert!(d.caps.len() <= v.len() / 8);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    match parse_region_info(data) {
        Ok(r) => {
            assert!(v.len() >= REGION_INFO_LEN);
            assert_eq!(
                r.flags.bits(),
                u32_at(v, 4),
                "region flags keep unknown bits"
            );
            assert_eq!(
                (r.index, r.size, r.offset),
                (u32_at(v, 8), u64_at(v, 16), u64_at(v, 24))
            );
            if let Some(a) = &r.sparse_mmap {
                assert!(a.len() * 16 <= v.len(), "{} sparse areas", a.len());
            }
            if !r.flags.contains(RegionFlags::CAPS) {
                assert!(r.sparse_mmap.is_none() && r.region_type.is_none() && !r.msix_mappable);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if v.len() >= REGION_INFO_LEN {
        chain(v, u32_at(v, 12), REGION_INFO_LEN);
    }

    match parse_hot_reset_info(data) {
        Ok(h) => {
            assert!(data.len() >= HOT_RESET_INFO_LEN);
            assert_eq!((h.flags, h.count), (u32_at(data, 4), u32_at(data, 8)));
            let fits = (h.count as usize) * 8 + HOT_RESET_INFO_LEN <= data.len();
            assert_eq!(h.devices.len(), if fits { h.count as usize } else { 0 });
            for d in &h.devices {
                let b = d.bdf;
                assert_eq!(Bdf::new(b.domain, b.bus, b.device, b.function), Some(b));
            }
        }
        Err(e) => {
            assert!(data.len() < HOT_RESET_INFO_LEN, "{e}");
        }
    }

    // The chain walker on its own, with a fuzzer-chosen start and header length.
    if data.len() >= 5 {
        let first = u32::from_ne_bytes(data[..4].try_into().unwrap());
        chain(&data[5..], first, usize::from(data[4]));
    }
});
