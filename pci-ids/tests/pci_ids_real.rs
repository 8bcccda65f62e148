//! The pci.ids database against the real file from Debian's `pci.ids` package
//! (/usr/share/misc/pci.ids; `$PASSTHRU_PCI_IDS` overrides). The test fails when
//! no database is installed: the test command must install the package.
#![cfg(feature = "std")]

use passthru_pci_ids::db::{Database, Entry, PciIds, PciIdsIndex};
use passthru_pci_ids::{DeviceId, VendorId};

fn real() -> Database {
    Database::find(None).unwrap_or_else(|e| panic!("{e} (apt-get install pci.ids)"))
}

/// Count lines by shape the way `grep -cP` would, independently of the parser.
fn count_lines(text: &str) -> (usize, usize, usize) {
    let is_hex = |s: &str| s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let (mut v, mut d, mut s) = (0, 0, 0);
    let mut in_classes = false;
    for l in text.lines() {
        if l.starts_with("C ") {
            in_classes = true;
        }
        if in_classes || l.starts_with('#') {
            continue;
        }
        if let Some(r) = l.strip_prefix("\t\t") {
            if r.len() > 11 && is_hex(&r[..4]) && is_hex(&r[5..9]) {
                s += 1;
            }
        } else if let Some(r) = l.strip_prefix('\t') {
            if r.len() > 6 && is_hex(&r[..4]) {
                d += 1;
            }
        } else if l.len() > 6 && is_hex(&l[..4]) {
            v += 1;
        }
    }
    (v, d, s)
}

#[test]
#[cfg_attr(miri, ignore = "1.4 MB of text; the parser's own tests run under Miri")]
fn real_database_parses_and_index_covers_every_line() {
    let db = real();
    let ids = db.ids().unwrap();
    let ix = db.index().unwrap();
    let (v, d, s) = count_lines(db.text());
    assert!(
        v > 2000 && d > 15000,
        "suspiciously small database: {v} vendors {d} devices"
    );
    assert_eq!(ix.vendor_count(), v);
    assert_eq!(ix.device_count(), d);
    let mut subs = 0;
    // every entry the scanner sees is found by the index with the same name
    // (duplicates would make this fail; pci.ids has none)
    for e in ids.entries() {
        match e.unwrap() {
            Entry::Vendor { id, name } => assert_eq!(ix.vendor(id), Some(name)),
            Entry::Device { vendor, id, name } => assert_eq!(ix.device(vendor, id), Some(name)),
            Entry::Subsystem {
                vendor,
                device,
                subvendor,
                subdevice,
                name,
            } => {
                subs += 1;
                assert_eq!(
                    ix.subsystem(vendor, device, subvendor, subdevice),
                    Some(name)
                );
            }
            Entry::Class { class, name } => assert_eq!(ix.class(class), Some(name)),
            Entry::Subclass {
                class,
                subclass,
                name,
            } => assert_eq!(ix.subclass(class, subclass), Some(name)),
            Entry::ProgIf {
                class,
                subclass,
                prog_if,
                name,
            } => assert_eq!(ix.prog_if(class, subclass, prog_if), Some(name)),
            _ => {}
        }
    }
    assert_eq!(subs, s);
    assert_eq!(ix.device_ids().count(), d);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "indexes 1.4 MB of text; the parser's own tests run under Miri"
)]
fn scenario_devices_have_names() {
    // the scenario in docs/rules.md: the four functions the user passed through.
    let db = real();
    let ix = db.index().unwrap();
    let fiji = ix.device(VendorId(0x1002), DeviceId(0x7300)).unwrap();
    assert!(fiji.starts_with("Fiji"), "{fiji}");
    let gtx = ix.device(VendorId(0x10de), DeviceId(0x1187)).unwrap();
    assert!(gtx.contains("GK104"), "{gtx}");
    assert!(ix.device(VendorId(0x10de), DeviceId(0x0e0a)).is_some());
    assert!(ix.device(VendorId(0x1002), DeviceId(0xaae8)).is_some());
    assert_eq!(ix.vendor(VendorId::NVIDIA), Some("NVIDIA Corporation"));
    assert_eq!(ix.class(0x03), Some("Display controller"));
    assert_eq!(ix.subclass(0x03, 0x00), Some("VGA compatible controller"));
    assert_eq!(ix.subclass(0x06, 0x04), Some("PCI bridge"));
    // the same answers by scanning
    let ids = db.ids().unwrap();
    assert_eq!(ids.device(VendorId(0x1002), DeviceId(0x7300)), Some(fiji));
}

#[test]
fn scan_and_index_agree_on_misses() {
    let text = "1002  AMD\n";
    let ids = PciIds::parse(text).unwrap();
    let ix = PciIdsIndex::build(text).unwrap();
    assert_eq!(ids.vendor(VendorId(0x1003)), None);
    assert_eq!(ix.vendor(VendorId(0x1003)), None);
    assert_eq!(ix.device(VendorId(0x1002), DeviceId(0)), None);
}

#[test]
#[cfg_attr(miri, ignore = "reads 64 MiB: file I/O, not byte handling")]
fn endless_file_is_an_error_not_a_hang() {
    match Database::load("/dev/zero") {
        Err(e @ passthru_pci_ids::db::LoadError::TooLarge { .. }) => {
            assert!(e.to_string().contains("/dev/zero"), "{e}")
        }
        other => panic!("expected TooLarge, got {:?}", other.map(|d| d.text().len())),
    }
}
