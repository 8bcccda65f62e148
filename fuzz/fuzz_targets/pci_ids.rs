//! `pci.ids` parser, index and lookups over arbitrary text.
//!
//! Checks: `PciIds::parse` and `PciIdsIndex::build` accept and reject the same texts
//! with the same error; the entry iterator ends, with at most one error, last; errors
//! name an offset inside the text; on a valid text every entry is found by both the
//! scanning lookups and the index, and when its key is unique under its parent both
//! return this entry's name; the index counts match the entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_pci_ids::db::{Entry, PciIds, PciIdsIndex};
use passthru_pci_ids::{DeviceId, VendorId};
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = PciIds::parse(&text);
    let index = PciIdsIndex::build(&text);
    match (&parsed, &index) {
        (Ok(_), Ok(_)) => {}
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "parse and index disagree on the error");
            assert!(a.offset <= text.len() && a.line >= 1, "{a:?}");
            let _ = a.to_string();
        }
        _ => panic!("parse {:?} but index {:?}", parsed.err(), index.err()),
    }

    let (Ok(db), Ok(ix)) = (parsed, index) else {
        return;
    };
    assert_eq!(db.text(), &*text);
    let mut entries = Vec::new();
    for e in db.entries() {
        entries.push(e.expect("a parsed text yields no error entries"));
        assert!(entries.len() <= text.len(), "entry iterator did not end");
    }

    // Count keys so that lookups are compared only where the answer is unique.
    let mut count: HashMap<(u8, u64), usize> = HashMap::new();
    let key = |e: &Entry| -> (u8, u64) {
        match *e {
            Entry::Vendor { id, .. } => (0, u64::from(id.0)),
            Entry::Device { vendor, id, .. } => (1, u64::from(vendor.0) << 16 | u64::from(id.0)),
            Entry::Subsystem {
                vendor,
                device,
                subvendor,
                subdevice,
                ..
            } => (
                2,
                u64::from(vendor.0) << 48
                    | u64::from(device.0) << 32
                    | u64::from(subvendor.0) << 16
                    | u64::from(subdevice.0),
            ),
            Entry::Class { class, .. } => (3, u64::from(class)),
            Entry::Subclass {
                class, subclass, ..
            } => (4, u64::from(class) << 8 | u64::from(subclass)),
            Entry::ProgIf {
                class,
                subclass,
                prog_if,
                ..
            } => (
                5,
                u64::from(class) << 16 | u64::from(subclass) << 8 | u64::from(prog_if),
            ),
            _ => (9, 0),
        }
    };
    for e in &entries {
        *count.entry(key(e)).or_default() += 1;
    }
    let parents_unique = |e: &Entry| -> bool {
        match *e {
            Entry::Device { vendor, .. } => count.get(&(0, u64::from(vendor.0))) == Some(&1),
            Entry::Subsystem { vendor, device, .. } => {
                count.get(&(0, u64::from(vendor.0))) == Some(&1)
                    && count.get(&(1, u64::from(vendor.0) << 16 | u64::from(device.0))) == Some(&1)
            }
            Entry::Subclass { class, .. } => count.get(&(3, u64::from(class))) == Some(&1),
            Entry::ProgIf {
                class, subclass, ..
            } => {
                count.get(&(3, u64::from(class))) == Some(&1)
                    && count.get(&(4, u64::from(class) << 8 | u64::from(subclass))) == Some(&1)
            }
            _ => true,
        }
    };

    // Scanning lookups are linear, so compare at most 16 entries (spread over the file).
    let stride = entries.len() / 16 + 1;
    let (mut vendors, mut devices) = (0, 0);
    for (i, e) in entries.iter().enumerate() {
        match e {
            Entry::Vendor { .. } => vendors += 1,
            Entry::Device { .. } => devices += 1,
            _ => {}
        }
        if i % stride != 0 {
            continue;
        }
        let (scan, fast, name) = match *e {
            Entry::Vendor { id, name } => (db.vendor(id), ix.vendor(id), name),
            Entry::Device { vendor, id, name } => {
                (db.device(vendor, id), ix.device(vendor, id), name)
            }
            Entry::Subsystem {
                vendor,
                device,
                subvendor,
                subdevice,
                name,
            } => (
                db.subsystem(vendor, device, subvendor, subdevice),
                ix.subsystem(vendor, device, subvendor, subdevice),
                name,
            ),
            Entry::Class { class, name } => (db.class(class), ix.class(class), name),
            Entry::Subclass {
                class,
                subclass,
                name,
            } => (
                db.subclass(class, subclass),
                ix.subclass(class, subclass),
                name,
            ),
            Entry::ProgIf {
                class,
                subclass,
                prog_if,
                name,
            } => (
                db.prog_if(class, subclass, prog_if),
                ix.prog_if(class, subclass, prog_if),
                name,
            ),
            _ => continue,
        };
        assert!(!name.contains('\n'), "{e:?}");
        assert!(scan.is_some(), "scan misses {e:?}");
        if count.get(&key(e)) == Some(&1) && parents_unique(e) {
            assert_eq!(scan, Some(name), "scan of {e:?}");
            assert_eq!(fast, Some(name), "index of {e:?}");
        }
    }
    assert_eq!(ix.vendor_count(), vendors);
    assert_eq!(ix.device_count(), devices);
    assert_eq!(ix.device_ids().count(), devices);
    // Lookups of ids absent from the text answer None, never panic.
    let _ = (
        ix.vendor(VendorId(0xffff)),
        ix.device(VendorId(0), DeviceId(0)),
    );
});
