//! Property tests: any bytes decode without panic and
//! every walk terminates within its bound; builder -> decode preserves every capability.

use passthru_pci_ids::builder::{BuildError, ConfigBuilder};
use passthru_pci_ids::caps::{
    AcsFlags, CapabilityId, Decoded, ExtCapabilities, ExtCapabilityId, PortType, MAX_EXT_CAPS,
    MAX_STD_CAPS,
};
use passthru_pci_ids::{ClassCode, ConfigSpace, DeviceId, VendorId};
use proptest::prelude::*;

/// `n` cases, unless `PROPTEST_CASES` says otherwise (scripts/miri.sh sets it low).
fn cases(n: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n)
}

fn exercise<T: AsRef<[u8]>>(c: &ConfigSpace<T>) {
    let b = c.as_bytes();
    let _ = (
        c.vendor_id(),
        c.device_id(),
        c.command(),
        c.status(),
        c.revision(),
    );
    let _ = (c.class_code(), c.header_type(), c.multifunction(), c.bist());
    let _ = (c.subsystem_vendor_id(), c.subsystem_id(), c.expansion_rom());
    let _ = (c.interrupt_pin(), c.interrupt_line(), c.bridge_buses());
    let _ = (c.bridge_control(), c.bridge_windows(), c.secondary_status());
    let _ = (c.bus_numbers(), c.subsystem(), c.capabilities_pointer());
    let ext = c.has_extended_config();
    assert!(ext || c.extended_capabilities().next().is_none());
    assert!(!ext || c.len() == 4096);
    for i in 0..8 {
        let _ = c.bar(i);
    }
    assert!(c.bars().count() <= 6);
    let mut n = 0;
    let mut errors = 0;
    for cap in c.capabilities() {
        n += 1;
        match cap {
            Ok(cap) => {
                let _ = cap.decode(b).map(|d| d.map(|d| d.fields(&mut |_, _| {})));
            }
            Err(_) => errors += 1,
        }
    }
    assert!(n <= MAX_STD_CAPS + 1 && errors <= 1);
    let (mut n, mut errors) = (0, 0);
    for cap in c.extended_capabilities() {
        n += 1;
        match cap {
            Ok(cap) => {
                let _ = cap.decode(b).map(|d| d.map(|d| d.fields(&mut |_, _| {})));
            }
            Err(_) => errors += 1,
        }
    }
    assert!(n <= MAX_EXT_CAPS + 1 && errors <= 1);
    let _ = (
        c.flr(),
        c.af_flr(),
        c.pm_no_soft_reset(),
        c.pcie_port_type(),
        c.acs(),
    );
}

/// Bytes that look like a config space with a capability list: random, but with
/// the Capabilities List bit on and pointers mostly in range, so walks go deep.
fn capful_bytes() -> impl Strategy<Value = Vec<u8>> {
    (prop::sample::select(vec![64usize, 256, 4096]), any::<u64>()).prop_map(|(len, seed)| {
        let mut x = seed | 1;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x as u8);
        }
        v[6] |= 0x10;
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(512)))]

    #[test]
    fn any_bytes_of_any_length_decode_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..4200)) {
        match ConfigSpace::new_checked(&bytes[..]) {
            Ok(c) => exercise(&c),
            Err(e) => prop_assert!(!matches!(bytes.len(), 64 | 256 | 4096), "{e}"),
        }
        if let Ok(c) = ConfigSpace::new_prefix(&bytes[..]) {
            exercise(&c);
        }
    }

    #[test]
    fn walks_over_capability_shaped_noise_terminate(bytes in capful_bytes()) {
        exercise(&ConfigSpace::new_checked(&bytes[..]).unwrap());
    }

    /// CardBus bridges (header type 2, pointer at 0x14) of every length: no panic,
    /// and the walk starts where 0x14 points.
    #[test]
    fn cardbus_headers_decode_without_panic(mut bytes in capful_bytes(), mf in any::<bool>()) {
        bytes[0x0e] = if mf { 0x82 } else { 0x02 };
        let c = ConfigSpace::new_checked(&bytes[..]).unwrap();
        exercise(&c);
        prop_assert_eq!(c.capabilities_register(), Some(0x14));
        prop_assert_eq!(c.capabilities_pointer(), Some(bytes[0x14]));
        prop_assert_eq!(c.bus_numbers().map(|b| b.secondary), Some(bytes[0x19]));
        prop_assert_eq!(c.subsystem().is_some(), bytes.len() > 64);
        match c.capabilities().next() {
            Some(Ok(cap)) => prop_assert_eq!(cap.offset, u16::from(bytes[0x14] & !3)),
            Some(Err(e)) => prop_assert_eq!(e.offset(), 0x14),
            None => prop_assert!(bytes[0x14] & !3 == 0),
        }
    }

    /// 4 KiB reads of conventional functions (no PCI Express or PCI-X capability in
    /// the standard list, whatever lies above 0x100), and 4 KiB reads that repeat
    /// their first 256 bytes (aliased, even with a PCIe capability): no panic and no
    /// extended capabilities.
    #[test]
    fn conventional_4k_spaces_have_no_extended_capabilities(
        bytes in capful_bytes(),
        header in prop::sample::select(vec![0u8, 1, 2, 0x80, 0x81, 0x82, 0x7f]),
        aliased in any::<bool>(),
    ) {
        let mut low = [0u8; 256];
        for (i, b) in low.iter_mut().enumerate() {
            *b = bytes[i % bytes.len()];
        }
        low[0x0e] = header;
        let mut space = vec![0u8; 4096];
        for (i, b) in space.iter_mut().enumerate() {
            *b = if aliased || i < 256 { low[i % 256] } else { bytes[i % bytes.len()] ^ 0x5a };
        }
        if !aliased {
            // make the function conventional: rename every PCIe / PCI-X capability in
            // its walk (the next pointers stay, so the walk visits the same offsets)
            let offsets: Vec<u16> = ConfigSpace::new_checked(&space[..]).unwrap()
                .capabilities().map_while(Result::ok)
                .filter(|c| matches!(c.id, CapabilityId::PciExpress | CapabilityId::PciX))
                .map(|c| c.offset).collect();
            for o in offsets {
                space[usize::from(o)] = 0x09;
            }
        }
        let c = ConfigSpace::new_checked(&space[..]).unwrap();
        exercise(&c);
        prop_assert!(!c.has_extended_config());
        prop_assert_eq!(c.extended_capabilities().count(), 0);
        prop_assert_eq!(c.acs(), None);
    }
}

#[derive(Debug, Clone)]
enum Std {
    Pm(bool),
    Msi(u8, bool),
    MsiX(u16),
    Pcie(u8, bool),
    Af(bool, bool),
    Vendor(u8),
    Raw(u8, u8),
}

#[derive(Debug, Clone)]
enum Ext {
    Acs(u16, u16),
    Aer,
    Ari(u8),
    Ats,
    SrIov(u16, u16),
    Rebar(u8),
    Dsn(u64),
    Pasid(u8),
    Pri(u32),
    Dpc,
    Ltr(u16, u16),
    L1pm(u32),
    Vsec(u16, u16),
    Dvsec(u16, u16),
    Raw(u16, u8),
}

fn std_strategy() -> impl Strategy<Value = Std> {
    prop_oneof![
        any::<bool>().prop_map(Std::Pm),
        (0u8..6, any::<bool>()).prop_map(|(a, b)| Std::Msi(a, b)),
        (1u16..=2048).prop_map(Std::MsiX),
        (
            prop::sample::select(vec![0u8, 1, 4, 5, 6, 7, 9, 0xa, 0xe]),
            any::<bool>()
        )
            .prop_map(|(a, b)| Std::Pcie(a, b)),
        (any::<bool>(), any::<bool>()).prop_map(|(a, b)| Std::Af(a, b)),
        (3u8..40).prop_map(Std::Vendor),
        // not 0xff: that id ends a walk as a broken chain (caps.rs unit tests)
        (0x16u8..=0xfe, 0u8..20).prop_map(|(a, b)| Std::Raw(a, b)),
    ]
}

fn ext_strategy() -> impl Strategy<Value = Ext> {
    prop_oneof![
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Ext::Acs(a, b)),
        Just(Ext::Aer),
        any::<u8>().prop_map(Ext::Ari),
        Just(Ext::Ats),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Ext::SrIov(a, b)),
        (0u8..28).prop_map(Ext::Rebar),
        any::<u64>().prop_map(Ext::Dsn),
        (0u8..32).prop_map(Ext::Pasid),
        any::<u32>().prop_map(Ext::Pri),
        Just(Ext::Dpc),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Ext::Ltr(a, b)),
        any::<u32>().prop_map(Ext::L1pm),
        (any::<u16>(), 8u16..64).prop_map(|(a, b)| Ext::Vsec(a, b)),
        (any::<u16>(), 10u16..64).prop_map(|(a, b)| Ext::Dvsec(a, b)),
        (0x31u16..0x400, 0u8..32).prop_map(|(a, b)| Ext::Raw(a, b)),
    ]
}

/// (id, size in bytes) as the builder lays it out.
fn std_shape(s: &Std) -> (u8, usize) {
    match s {
        Std::Pm(_) => (0x01, 8),
        Std::Msi(_, w) => (0x05, if *w { 14 } else { 10 }),
        Std::MsiX(_) => (0x11, 12),
        Std::Pcie(..) => (0x10, 0x3c),
        Std::Af(..) => (0x13, 6),
        Std::Vendor(l) => (0x09, usize::from(*l)),
        Std::Raw(id, n) => (*id, 2 + usize::from(*n)),
    }
}

fn ext_shape(e: &Ext) -> (u16, usize) {
    match e {
        Ext::Acs(..) => (0x0d, 8),
        Ext::Aer => (0x01, 0x48),
        Ext::Ari(_) => (0x0e, 8),
        Ext::Ats => (0x0f, 8),
        Ext::SrIov(..) => (0x10, 0x40),
        Ext::Rebar(_) => (0x15, 12),
        Ext::Dsn(_) => (0x03, 12),
        Ext::Pasid(_) => (0x1b, 8),
        Ext::Pri(_) => (0x13, 16),
        Ext::Dpc => (0x1d, 12),
        Ext::Ltr(..) => (0x18, 8),
        Ext::L1pm(_) => (0x1e, 16),
        Ext::Vsec(_, l) => (0x0b, usize::from(*l)),
        Ext::Dvsec(_, l) => (0x23, usize::from(*l)),
        Ext::Raw(id, n) => (*id, 4 + usize::from(*n)),
    }
}

fn apply(mut b: ConfigBuilder, stds: &[Std], exts: &[Ext]) -> ConfigBuilder {
    for s in stds {
        b = match *s {
            Std::Pm(n) => b.with_pm(n),
            Std::Msi(v, w) => b.with_msi(v, w),
            Std::MsiX(n) => b.with_msix(n, 0, 0x2000, 0, 0x3000),
            Std::Pcie(t, f) => b.with_pcie(PortType::from(t), f),
            Std::Af(tp, f) => b.with_af(tp, f),
            Std::Vendor(l) => b.with_vendor_specific(l),
            Std::Raw(id, n) => b.with_capability(id, &vec![0xa5; usize::from(n)]),
        };
    }
    for e in exts {
        b = match *e {
            Ext::Acs(c, k) => {
                b.with_acs(AcsFlags::from_bits_retain(c), AcsFlags::from_bits_retain(k))
            }
            Ext::Aer => b.with_aer(),
            Ext::Ari(n) => b.with_ari(n),
            Ext::Ats => b.with_ats(),
            Ext::SrIov(t, n) => b.with_sriov(t, n, 1, 1, DeviceId(0x1234)),
            Ext::Rebar(cur) => b.with_rebar(0, 0x0fff_ffff, cur),
            Ext::Dsn(s) => b.with_dsn(s),
            Ext::Pasid(w) => b.with_pasid(w),
            Ext::Pri(c) => b.with_pri(c),
            Ext::Dpc => b.with_dpc(),
            Ext::Ltr(s, n) => b.with_ltr(s, n),
            Ext::L1pm(c) => b.with_l1pm(c),
            Ext::Vsec(id, l) => b.with_vsec(id, 1, l),
            Ext::Dvsec(id, l) => b.with_dvsec(VendorId(0x1e98), 1, l, id),
            Ext::Raw(id, n) => b.with_ext_capability(id, 1, &vec![0x5a; usize::from(n)]),
        };
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn builder_to_decoder_preserves_every_capability(
        stds in prop::collection::vec(std_strategy(), 0..8),
        exts in prop::collection::vec(ext_strategy(), 0..12),
    ) {
        let b = apply(
            ConfigBuilder::endpoint(VendorId(0x10de), DeviceId(0x1187), ClassCode::from_u32(0x030000)),
            &stds,
            &exts,
        );
        // expected layout per the builder's documented rule
        let mut want_std = Vec::new();
        let mut at = 0x40usize;
        let mut fits = true;
        for s in &stds {
            let (id, size) = std_shape(s);
            if at + size > 256 { fits = false; break; }
            want_std.push((id, at as u16));
            at = (at + size + 3) & !3;
        }
        let mut want_ext = Vec::new();
        let mut at = 0x100usize;
        for e in &exts {
            let (id, size) = ext_shape(e);
            if at + size > 4096 { fits = false; break; }
            want_ext.push((id, at as u16));
            at = (at + size + 3) & !3;
        }
        let mut buf = [0u8; 4096];
        let len = match b.build_into(&mut buf) {
            Ok(len) => len,
            Err(BuildError::NoRoom { .. }) => { prop_assert!(!fits); return Ok(()); }
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        prop_assert!(fits);
        let c = ConfigSpace::new_checked(&buf[..len]).unwrap();
        let got_std: Vec<(u8, u16)> = c.capabilities().map(|r| r.unwrap()).map(|c| (u8::from(c.id), c.offset)).collect();
        prop_assert_eq!(&got_std, &want_std);
        let got_ext: Vec<(u16, u16)> = ExtCapabilities::new(&buf[..len]).map(|r| r.unwrap()).map(|c| (u16::from(c.id), c.offset)).collect();
        // a raw ext cap with id 0 would read as a zero header only if version were 0; ids start at 0x31
        prop_assert_eq!(&got_ext, &want_ext);
        // the function has them only with a PCI Express capability (the strategy makes no PCI-X)
        let pcie = want_std.iter().any(|s| s.0 == 0x10);
        prop_assert_eq!(c.has_extended_config(), pcie && len == 4096);
        prop_assert_eq!(c.extended_capabilities().count(), if pcie { want_ext.len() } else { 0 });
        // field values survive
        for (s, cap) in stds.iter().zip(c.capabilities().map(|r| r.unwrap())) {
            match (s, cap.decode(&buf[..len])) {
                (Std::Pm(n), Some(Ok(Decoded::PowerManagement(p)))) => prop_assert_eq!(p.no_soft_reset, *n),
                (Std::Pcie(t, f), Some(Ok(Decoded::PciExpress(p)))) => {
                    prop_assert_eq!(p.flr, *f);
                    prop_assert_eq!(u8::from(p.port_type), *t);
                }
                (Std::Af(tp, f), Some(Ok(Decoded::AdvancedFeatures(a)))) => {
                    prop_assert_eq!((a.transactions_pending, a.flr), (*tp, *f));
                }
                (Std::MsiX(n), Some(Ok(Decoded::MsiX(m)))) => prop_assert_eq!(m.table_size, *n),
                (Std::Msi(v, w), Some(Ok(Decoded::Msi(m)))) => {
                    prop_assert_eq!((m.multiple_message_capable, m.is_64bit), (*v, *w));
                }
                (Std::Vendor(l), Some(Ok(Decoded::VendorSpecific(v)))) => prop_assert_eq!(v.length, *l),
                (Std::Raw(..), None) => prop_assert!(matches!(cap.id, CapabilityId::Unknown(_)) || cap.decode(&buf[..len]).is_none()),
                (s, d) => prop_assert!(false, "{:?} decoded as {:?}", s, d),
            }
        }
        for (e, cap) in exts.iter().zip(ExtCapabilities::new(&buf[..len]).map(|r| r.unwrap())) {
            match (e, cap.decode(&buf[..len])) {
                (Ext::Acs(k, t), Some(Ok(Decoded::Acs(a)))) => {
                    prop_assert_eq!((a.capability.bits(), a.control.bits()), (*k, *t));
                }
                (Ext::Dsn(s), Some(Ok(Decoded::Dsn(d)))) => prop_assert_eq!(d.serial, *s),
                (Ext::SrIov(t, n), Some(Ok(Decoded::SrIov(v)))) => prop_assert_eq!((v.total_vfs, v.num_vfs), (*t, *n)),
                (Ext::Ari(n), Some(Ok(Decoded::Ari(a)))) => prop_assert_eq!(a.next_function, *n),
                (Ext::Rebar(cur), Some(Ok(Decoded::ResizableBar(r)))) => prop_assert_eq!(r.entries()[0].current(), *cur),
                (Ext::Pasid(w), Some(Ok(Decoded::Pasid(p)))) => prop_assert_eq!(p.max_width, *w),
                (Ext::Pri(k), Some(Ok(Decoded::Pri(p)))) => prop_assert_eq!(p.capacity, *k),
                (Ext::Ltr(s, n), Some(Ok(Decoded::Ltr(l)))) => prop_assert_eq!((l.max_snoop_raw, l.max_no_snoop_raw), (*s, *n)),
                (Ext::L1pm(k), Some(Ok(Decoded::L1PmSubstates(l)))) => prop_assert_eq!(l.supported, k & 0x10 != 0),
                (Ext::Vsec(id, l), Some(Ok(Decoded::Vsec(v)))) => prop_assert_eq!((v.id, v.length), (*id, *l)),
                (Ext::Dvsec(id, l), Some(Ok(Decoded::Dvsec(v)))) => prop_assert_eq!((v.id, v.length, v.vendor), (*id, *l, VendorId(0x1e98))),
                (Ext::Aer, Some(Ok(Decoded::Aer(_)))) | (Ext::Ats, Some(Ok(Decoded::Ats(_)))) | (Ext::Dpc, Some(Ok(Decoded::Dpc(_)))) => {}
                (Ext::Raw(..), None) => prop_assert!(matches!(cap.id, ExtCapabilityId::Unknown(_)) || u16::from(cap.id) > 0x30),
                (e, d) => prop_assert!(false, "{:?} decoded as {:?}", e, d),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn any_text_never_panics_the_dump_and_pci_ids_parsers(s in "[0-9a-fA-F: \\t\\n.xC#]{0,400}") {
        for d in passthru_pci_ids::dump::Dump::new(&s).take(100).flatten() {
            prop_assert!(matches!(d.bytes().len(), 64 | 256 | 4096));
        }
        let _ = passthru_pci_ids::db::PciIds::parse(&s);
        #[cfg(feature = "alloc")]
        {
            let ix = passthru_pci_ids::db::PciIdsIndex::build(&s);
            let scan = passthru_pci_ids::db::PciIds::parse(&s);
            prop_assert_eq!(ix.err(), scan.err(), "index and scanner disagree on errors");
        }
    }

    #[test]
    fn dump_write_read_round_trip(
        len in prop::sample::select(vec![64usize, 256, 4096]),
        seed in any::<u8>(),
        bus in any::<u8>(), dev in 0u8..32, func in 0u8..8, domain in any::<u16>(),
    ) {
        let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let bdf = passthru_pci_ids::Bdf::new(domain, bus, dev, func).unwrap();
        let mut s = String::new();
        passthru_pci_ids::dump::write_device(&mut s, &bdf, "desc", &bytes).unwrap();
        let d = passthru_pci_ids::dump::Dump::new(&s).next().unwrap().unwrap();
        prop_assert_eq!(d.bdf, bdf);
        prop_assert_eq!(d.bytes(), &bytes[..]);
    }
}

proptest! {
    #[test]
    fn header_repr_parse_emit_parse_is_identity(bytes in prop::collection::vec(any::<u8>(), 64)) {
        use passthru_pci_ids::config::HeaderRepr;
        let repr = HeaderRepr::parse(&ConfigSpace::new_checked(&bytes[..]).unwrap());
        let mut out = [0u8; 64];
        repr.emit(&mut ConfigSpace::new_checked(&mut out[..]).unwrap());
        prop_assert_eq!(HeaderRepr::parse(&ConfigSpace::new_checked(&out[..]).unwrap()), repr);
    }
}
