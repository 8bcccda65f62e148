//! `lspci -x/-xxx/-xxxx` dump reader over arbitrary text, and the writer round trip.
//!
//! Checks: the device iterator ends, yields at most one error and stops after it; the
//! error names a byte offset inside the text and a line that exists; every device has
//! 64/256/4096 bytes that form a valid `ConfigSpace` and a header offset inside the
//! text. Every device written back with `write_device` reads back identically, alone
//! and as one concatenated dump.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_pci_ids::dump::{write_device, Dump, DumpDevice};
use passthru_pci_ids::ConfigSpace;

fn same(a: &DumpDevice<'_>, b: &DumpDevice<'_>) {
    assert_eq!(a.bdf, b.bdf);
    assert_eq!(a.description, b.description);
    assert_eq!(a.bytes(), b.bytes());
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count().max(1);
    let mut devices = Vec::new();
    let mut it = Dump::new(&text);
    let mut n = 0usize;
    while let Some(item) = it.next() {
        n += 1;
        assert!(n <= text.len() + 1, "dump iterator did not end");
        match item {
            Ok(dev) => {
                let len = dev.bytes().len();
                assert!(matches!(len, 64 | 256 | 4096), "device of {len} bytes");
                assert!(dev.offset < text.len());
                let c = dev.config().expect("a device's bytes form a config space");
                assert_eq!(c.as_bytes(), dev.bytes());
                assert!(ConfigSpace::new_checked(dev.bytes()).is_ok());
                assert!(!dev.description.contains('\n'));
                let _ = format!("{dev:?}");
                devices.push(dev);
            }
            Err(e) => {
                assert!(e.offset <= text.len(), "{e:?} past {} bytes", text.len());
                assert!(e.line >= 1 && e.line <= lines + 1, "{e:?} of {lines} lines");
                let _ = e.to_string();
                assert!(it.next().is_none(), "dump went on after {e}");
                break;
            }
        }
    }
    assert!(it.next().is_none(), "dump iterator not fused");

    // Writer round trip.
    let mut all = String::new();
    for dev in &devices {
        let mut one = String::new();
        write_device(&mut one, &dev.bdf, dev.description, dev.bytes()).unwrap();
        let back: Vec<_> = Dump::new(&one).collect();
        assert_eq!(
            back.len(),
            1,
            "write_device output {one:?} read as {back:?}"
        );
        let back = back[0]
            .as_ref()
            .unwrap_or_else(|e| panic!("{e} in {one:?}"));
        same(dev, back);
        all.push_str(&one);
    }
    let back: Vec<_> = Dump::new(&all).collect();
    assert_eq!(back.len(), devices.len());
    for (a, b) in devices.iter().zip(&back) {
        same(
            a,
            b.as_ref()
                .unwrap_or_else(|e| panic!("{e} in concatenated dump")),
        );
    }
});
