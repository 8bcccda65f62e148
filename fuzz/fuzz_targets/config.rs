//! Config-space view, capability walks and every decoder over arbitrary bytes.
//!
//! Checks, beyond "never panics":
//! - `new_checked` accepts exactly 64/256/4096 bytes, `new_prefix` keeps the largest
//!   valid prefix;
//! - both walks are bounded (48 standard / 960 extended), yield at most one error and
//!   it is the last item, stay fused afterwards, and every capability they return lies
//!   inside the buffer, outside the header, dword aligned and unique;
//! - `find_capability`/`find_ext_capability` agree with the walks;
//! - no extended capability without an extended space (`has_extended_config`);
//! - every decoder (via `decode` and directly at a fuzzer-chosen offset) returns a value
//!   or a `DecodeError` naming that offset, and `fields` lists named values;
//! - header setters round-trip through the getters, keeping unknown bits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_pci_ids::caps::{
    self, CapabilityId, Decoded, ExtCapabilityId, MAX_EXT_CAPS, MAX_STD_CAPS,
};
use passthru_pci_ids::config::{BridgeControl, Command, Status};
use passthru_pci_ids::{ClassCode, ConfigSpace, DeviceId, VendorId};
use std::collections::HashSet;

fn fields(d: &Decoded) {
    let mut n = 0;
    d.fields(&mut |name, v| {
        assert!(!name.is_empty(), "unnamed field {v:?} in {d:?}");
        n += 1;
    });
    assert!(n > 0, "decoder with no fields: {d:?}");
}

fn header<T: AsRef<[u8]>>(c: &ConfigSpace<T>) {
    let _ = (
        c.vendor_id(),
        c.device_id(),
        c.command(),
        c.status().devsel(),
    );
    let _ = (
        c.revision(),
        c.class_code(),
        c.cache_line_size(),
        c.latency_timer(),
    );
    let _ = (
        c.header_type_raw(),
        c.header_type(),
        c.multifunction(),
        c.bist(),
    );
    assert!(c.bar_count() <= 6);
    for i in 0..8 {
        assert_eq!(c.bar_raw(i).is_some(), i < c.bar_count(), "bar_raw({i})");
        if let Some(b) = c.bar(i) {
            let _ = b.is_64bit();
        }
    }
    assert!(c.bars().count() <= c.bar_count());
    let _ = (c.subsystem_vendor_id(), c.subsystem_id(), c.cardbus_cis());
    let _ = (c.expansion_rom_raw(), c.expansion_rom());
    let _ = (c.capabilities_pointer_raw(), c.capabilities_pointer());
    let _ = (
        c.interrupt_line(),
        c.interrupt_pin(),
        c.min_gnt(),
        c.max_lat(),
    );
    let _ = (c.bridge_buses(), c.bridge_control(), c.secondary_status());
    let _ = (
        c.bus_numbers(),
        c.capabilities_register(),
        c.has_extended_config(),
    );
    let _ = c.bridge_windows();
    let _ = (c.pcie(), c.power_management(), c.advanced_features());
    let _ = (
        c.flr(),
        c.af_flr(),
        c.pm_no_soft_reset(),
        c.pcie_port_type(),
        c.acs(),
    );
    let _ = (c.has_capability_area(), c.has_extended_area());
}

fn walks<T: AsRef<[u8]>>(c: &ConfigSpace<T>) {
    let b = c.as_bytes();
    let len = b.len();

    // Standard list.
    let mut walk = c.capabilities();
    let (mut seen, mut first_of) = (HashSet::new(), Vec::new());
    let mut n = 0;
    while let Some(item) = walk.next() {
        n += 1;
        assert!(n <= MAX_STD_CAPS + 1, "standard walk did not end");
        match item {
            Ok(cap) => {
                let o = usize::from(cap.offset);
                assert!(
                    o >= 0x40 && o % 4 == 0 && o + 2 <= len,
                    "{cap:?} in {len} bytes"
                );
                assert!(seen.insert(cap.offset), "offset {o:#x} returned twice");
                assert_eq!(cap.id, CapabilityId::from(b[o]));
                assert_eq!(cap.next, b[o + 1]);
                if !first_of.iter().any(|(id, _)| *id == cap.id) {
                    first_of.push((cap.id, cap.offset));
                }
                let _ = cap.id.name();
                if let Some(d) = cap.decode(b) {
                    match d {
                        Ok(d) => fields(&d),
                        Err(e) => {
                            assert_eq!(e.offset, cap.offset);
                            let _ = e.to_string();
                        }
                    }
                }
            }
            Err(e) => {
                let _ = (e.to_string(), e.offset());
                assert!(walk.next().is_none(), "standard walk went on after {e}");
                break;
            }
        }
    }
    assert!(
        walk.next().is_none() && walk.next().is_none(),
        "standard walk not fused"
    );
    for (id, off) in &first_of {
        assert_eq!(
            c.find_capability(*id),
            Some(*off),
            "find_capability({id:?})"
        );
    }

    // Extended list.
    let mut walk = c.extended_capabilities();
    let (mut seen, mut first_of) = (HashSet::new(), Vec::new());
    let mut n = 0;
    while let Some(item) = walk.next() {
        n += 1;
        assert!(n <= MAX_EXT_CAPS + 1, "extended walk did not end");
        match item {
            Ok(cap) => {
                let o = usize::from(cap.offset);
                assert!(
                    o >= 0x100 && o % 4 == 0 && o + 4 <= len,
                    "{cap:?} in {len} bytes"
                );
                assert!(seen.insert(cap.offset), "offset {o:#x} returned twice");
                assert!(cap.version <= 0xf);
                assert!(cap.next <= 0xfff);
                if !first_of.iter().any(|(id, _)| *id == cap.id) {
                    first_of.push((cap.id, cap.offset));
                }
                let _ = cap.id.name();
                if let Some(d) = cap.decode(b) {
                    match d {
                        Ok(d) => fields(&d),
                        Err(e) => {
                            assert_eq!(e.offset, cap.offset);
                            let _ = e.to_string();
                        }
                    }
                }
            }
            Err(e) => {
                let _ = (e.to_string(), e.offset());
                assert!(walk.next().is_none(), "extended walk went on after {e}");
                break;
            }
        }
    }
    assert!(
        walk.next().is_none() && walk.next().is_none(),
        "extended walk not fused"
    );
    for (id, off) in &first_of {
        assert_eq!(
            c.find_ext_capability(*id),
            Some(*off),
            "find_ext_capability({id:?})"
        );
    }
    if len < 4096 || !c.has_extended_config() {
        assert_eq!(n, 0, "extended walk over {len} bytes, no extended space");
    }
}

/// Every decoder, straight at `off`: a value, or an error that names `off`.
fn decoders_at(b: &[u8], off: u16) {
    macro_rules! each {
        ($($t:ident => $v:ident),* $(,)?) => {$(
            match caps::$t::parse(b, off) {
                Ok(x) => fields(&Decoded::$v(x)),
                Err(e) => {
                    assert_eq!(e.offset, off, "{} at {off:#x}", stringify!($t));
                    assert!(e.at >= usize::from(off));
                }
            }
        )*};
    }
    each!(
        PowerManagement => PowerManagement, Msi => Msi, MsiX => MsiX,
        PciExpress => PciExpress, AdvancedFeatures => AdvancedFeatures,
        VendorSpecific => VendorSpecific, EnhancedAllocation => EnhancedAllocation,
        Aer => Aer, Acs => Acs, Ari => Ari, Ats => Ats, SrIov => SrIov,
        ResizableBar => ResizableBar, Pasid => Pasid, Pri => Pri, Dpc => Dpc, Ltr => Ltr,
        L1PmSubstates => L1PmSubstates, Dsn => Dsn, Vsec => Vsec, Dvsec => Dvsec,
    );
    if let Ok(r) = caps::ResizableBar::parse(b, off) {
        assert!(r.entries().len() <= 6);
        for e in r.entries() {
            let _ = e.current_bytes();
        }
    }
    if let Ok(p) = caps::PciExpress::parse(b, off) {
        let _ = p.hot_plug();
    }
    if let Ok(s) = caps::SrIov::parse(b, off) {
        let _ = s.vf_enabled();
    }
    if let Ok(a) = caps::Acs::parse(b, off) {
        let _ = a.egress_vector_size();
    }
    let _ = caps::Ltr::nanoseconds(off);
}

fn setters(bytes: &[u8], probe: u16) {
    let mut c = ConfigSpace::new_checked(bytes.to_vec()).expect("length checked by caller");
    c.set_vendor_id(VendorId(probe));
    c.set_device_id(DeviceId(!probe));
    c.set_command(Command::from_bits_retain(probe));
    c.set_status(Status::from_bits_retain(probe.rotate_left(3)));
    c.set_class_code(ClassCode::from_u32(u32::from(probe) << 4));
    c.set_header_type_raw(probe as u8);
    assert_eq!(c.vendor_id(), VendorId(probe));
    assert_eq!(c.device_id(), DeviceId(!probe));
    assert_eq!(c.command().bits(), probe, "command keeps unknown bits");
    assert_eq!(
        c.status().bits(),
        probe.rotate_left(3),
        "status keeps unknown bits"
    );
    assert_eq!(c.class_code(), ClassCode::from_u32(u32::from(probe) << 4));
    assert_eq!(c.header_type_raw(), probe as u8);
    if c.bridge_control().is_some() {
        c.set_bridge_control(BridgeControl::from_bits_retain(probe));
        assert_eq!(c.bridge_control().map(|b| b.bits()), Some(probe));
    }
    // Nothing outside the header registers changed.
    assert_eq!(&c.as_bytes()[0x40..], &bytes[0x40..]);
    header(&c);
    walks(&c);
}

fuzz_target!(|data: &[u8]| {
    let len = data.len();
    match ConfigSpace::new_checked(data) {
        Ok(c) => {
            assert!(matches!(len, 64 | 256 | 4096));
            header(&c);
            walks(&c);
        }
        Err(e) => {
            assert!(!matches!(len, 64 | 256 | 4096), "{e}");
            let _ = e.to_string();
        }
    }
    match ConfigSpace::new_prefix(data) {
        Ok(c) => {
            let want = if len >= 4096 {
                4096
            } else if len >= 256 {
                256
            } else {
                64
            };
            assert_eq!(c.len(), want);
            assert_eq!(c.as_bytes(), &data[..want]);
            header(&c);
            walks(&c);
            // The last two bytes pick an offset for every decoder.
            let probe = u16::from_le_bytes([data[len - 2], data[len - 1]]);
            decoders_at(c.as_bytes(), probe);
            decoders_at(c.as_bytes(), probe & 0xffc);
            setters(c.as_bytes(), probe);
        }
        Err(_) => assert!(len < 64),
    }
    // Decoders over short buffers too (no header at all).
    if (2..64).contains(&len) {
        decoders_at(data, u16::from(data[0]) % 64);
    }
    let _ = ExtCapabilityId::from(len as u16).name();
});
