//! Identifier parsers (`Bdf`, `Slot`, `VendorId`, `DeviceId`, `ClassCode`, and the
//! CLI's `DeviceSpec` from iommu-groups): any string
//! parses without panicking, and whatever parses displays in canonical form and parses
//! back to the same value (display is a fixed point).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_iommu_groups::DeviceSpec;
use passthru_pci_ids::{Bdf, ClassCode, DeviceId, Slot, VendorId};
use std::fmt::Display;
use std::str::FromStr;

/// Parse `s`; on success the display must parse back to the same value and be stable.
fn check<T>(s: &str)
where
    T: FromStr + Display + PartialEq + core::fmt::Debug,
    T::Err: Display,
{
    match s.parse::<T>() {
        Ok(v) => {
            let shown = v.to_string();
            let back: T = shown.parse().unwrap_or_else(|e| {
                panic!("{shown:?} (display of {v:?} from {s:?}) does not parse: {e}")
            });
            assert_eq!(back, v, "round trip of {s:?} via {shown:?}");
            assert_eq!(back.to_string(), shown, "display not stable for {s:?}");
        }
        Err(e) => {
            // The error's message must render without panicking either.
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    check::<Bdf>(&s);
    check::<Slot>(&s);
    check::<VendorId>(&s);
    check::<DeviceId>(&s);
    check::<ClassCode>(&s);
    // The CLI's device argument (iommu-groups): BDF, slot or vendor:device.
    check::<DeviceSpec>(&s);
    // A Bdf always carries a Slot that displays as the Bdf's prefix.
    if let Ok(bdf) = s.parse::<Bdf>() {
        assert!(
            bdf.device <= 0x1f && bdf.function <= 7,
            "{bdf:?} from {s:?}"
        );
        let slot = bdf.slot();
        assert!(slot.contains(&bdf));
        assert!(bdf.to_string().starts_with(&slot.to_string()));
        assert_eq!(
            Bdf::new(bdf.domain, bdf.bus, bdf.device, bdf.function),
            Some(bdf)
        );
    }
});
