//! The committed seeds are what they claim to be, and crashes found by fuzzing stay
//! fixed. Run with `cargo +nightly test --manifest-path fuzz/Cargo.toml` (scripts/fuzz.sh
//! does, before fuzzing).

use passthru_pci_ids::dump::Dump;
use passthru_pci_ids::ConfigSpace;
use passthru_vfio_core::info::{
    parse_device_info, parse_hot_reset_info, parse_iommu_info, parse_region_info, SparseArea,
};
use std::fs;
use std::path::{Path, PathBuf};

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut out: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target)
        .join(name);
    fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn config_seeds_are_real_config_spaces_with_clean_walks() {
    for (p, b) in seeds("config") {
        let c = ConfigSpace::new_checked(&b[..]).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_ne!(c.vendor_id().0, 0xffff, "{}", p.display());
        assert!(c.capabilities().all(|r| r.is_ok()), "{}", p.display());
        assert!(
            c.extended_capabilities().all(|r| r.is_ok()),
            "{}",
            p.display()
        );
    }
}

#[test]
fn lspci_dump_seeds_read_without_error() {
    let mut devices = 0;
    for (p, b) in seeds("lspci_dump") {
        let text = String::from_utf8(b).unwrap();
        for d in Dump::new(&text) {
            let d = d.unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(d.config().is_ok());
            devices += 1;
        }
    }
    assert_eq!(devices, 6);
}

#[test]
fn pci_ids_seeds_parse() {
    for (p, b) in seeds("pci_ids") {
        let text = String::from_utf8(b).unwrap();
        let db = passthru_pci_ids::db::PciIds::parse(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(db.entries().count() > 20, "{}", p.display());
    }
}

#[test]
fn vfio_info_seeds_decode_to_the_captured_values() {
    let i = parse_iommu_info(&seed("vfio_info", "iommu-info-amd.bin")).unwrap();
    assert_eq!(i.iova_ranges.len(), 3);
    assert_eq!(i.dma_avail, Some(65535));
    assert_eq!(i.migration.map(|m| m.pgsize_bitmap), Some(0x1000));
    let d = parse_device_info(&seed("vfio_info", "device-info-e1000e.bin")).unwrap();
    assert_eq!((d.num_regions, d.num_irqs), (9, 5));
    let r = parse_region_info(&seed("vfio_info", "region-config.bin")).unwrap();
    assert_eq!((r.index, r.size, r.offset), (7, 0x1000, 0x70000000000));
    let r = parse_region_info(&seed("vfio_info", "region-bar3-msix.bin")).unwrap();
    assert!(r.msix_mappable);
    let r = parse_region_info(&seed("vfio_info", "region-sparse-type.bin")).unwrap();
    assert_eq!(
        r.sparse_mmap,
        Some(vec![
            SparseArea {
                offset: 0,
                size: 0x3000
            },
            SparseArea {
                offset: 0x4000,
                size: 0xffc000
            },
        ])
    );
    assert_eq!(r.region_type, Some((0x8000_0000, 1)));
    let h = parse_hot_reset_info(&seed("vfio_info", "hot-reset-06.bin")).unwrap();
    let bdfs: Vec<String> = h.devices.iter().map(|d| d.bdf.to_string()).collect();
    assert_eq!(bdfs, ["0000:06:00.0", "0000:06:00.1"]);
}
