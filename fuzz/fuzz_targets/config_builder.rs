//! Builder round trip: a fuzzer-chosen header and list of capabilities is built with
//! `ConfigBuilder`, then decoded with `ConfigSpace`. When the build succeeds the decoded
//! header holds what was set, both walks return exactly the capabilities added (same
//! ids, same order, no walk error) and each decoder reads back the values given. When
//! it fails, the error is one the inputs explain (no room, or a bad length).
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use passthru_pci_ids::builder::{BuildError, ConfigBuilder};
use passthru_pci_ids::caps::{AcsFlags, CapabilityId, Decoded, ExtCapabilityId, PortType};
use passthru_pci_ids::config::HeaderType;
use passthru_pci_ids::{ClassCode, ConfigSpace, DeviceId, VendorId};

#[derive(Debug, Arbitrary)]
enum Std {
    Pm(bool),
    Msi(u8, bool),
    MsiX(u16, u8, u32, u8, u32),
    Pcie(u8, bool, Option<(u16, bool)>, Option<bool>),
    Af(bool, bool),
    Vendor(u8),
    Raw(u8, Vec<u8>),
}

/// A raw capability id the builder is asked for: any but 0xff (see its use).
fn raw_id(id: u8) -> u8 {
    if id == 0xff {
        0xfe
    } else {
        id
    }
}

#[derive(Debug, Arbitrary)]
enum Ext {
    Acs(u16, u16),
    Aer,
    Ari(u8),
    Ats,
    SrIov(u16, u16, u16, u16, u16),
    Rebar(u8, u32, u8),
    Dsn(u64),
    Pasid(u8),
    Pri(u32),
    Dpc,
    Ltr(u16, u16),
    L1pm(u32),
    Vsec(u16, u8, u16),
    Dvsec(u16, u8, u16, u16),
    Raw(u16, u8, Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    vendor: u16,
    device: u16,
    class: u32,
    bridge: Option<(u8, u8, u8)>,
    multifunction: bool,
    revision: u8,
    len: Option<u8>,
    std: Vec<Std>,
    ext: Vec<Ext>,
}

fn port_type(raw: u8) -> PortType {
    PortType::from(raw & 0xf)
}

fuzz_target!(|inp: Input| {
    let class = ClassCode::from_u32(inp.class & 0xff_ffff);
    let mut b = match inp.bridge {
        Some((p, s, sub)) => {
            ConfigBuilder::bridge(VendorId(inp.vendor), DeviceId(inp.device), p, s, sub)
        }
        None => ConfigBuilder::endpoint(VendorId(inp.vendor), DeviceId(inp.device), class),
    };
    if inp.multifunction {
        b = b.with_multifunction();
    }
    b = b.with_revision(inp.revision);
    let mut want_std = Vec::new();
    for s in &inp.std {
        b = match *s {
            Std::Pm(nsr) => b.with_pm(nsr),
            Std::Msi(v, w) => b.with_msi(v, w),
            Std::MsiX(n, tb, to, pb, po) => b.with_msix(n, tb, to, pb, po),
            Std::Pcie(pt, flr, slot, ari) => {
                let mut b = b.with_pcie(port_type(pt), flr);
                if let Some((n, hp)) = slot {
                    b = b.with_pcie_slot(n, hp);
                }
                if let Some(a) = ari {
                    b = b.with_ari_forwarding(a);
                }
                b
            }
            Std::Af(tp, flr) => b.with_af(tp, flr),
            Std::Vendor(l) => b.with_vendor_specific(l),
            // Id 0xff is what an absent device reads as: the kernel and lspci end the
            // walk there (a broken chain), so the builder is not asked for it.
            Std::Raw(id, ref body) => b.with_capability(raw_id(id), body),
        };
        want_std.push(match *s {
            Std::Pm(_) => CapabilityId::PowerManagement,
            Std::Msi(..) => CapabilityId::Msi,
            Std::MsiX(..) => CapabilityId::MsiX,
            Std::Pcie(..) => CapabilityId::PciExpress,
            Std::Af(..) => CapabilityId::AdvancedFeatures,
            Std::Vendor(_) => CapabilityId::VendorSpecific,
            Std::Raw(id, _) => CapabilityId::from(raw_id(id)),
        });
    }
    let mut want_ext = Vec::new();
    for e in &inp.ext {
        let (nb, id) = match *e {
            Ext::Acs(c, k) => (
                b.with_acs(AcsFlags::from_bits_retain(c), AcsFlags::from_bits_retain(k)),
                ExtCapabilityId::Acs,
            ),
            Ext::Aer => (b.with_aer(), ExtCapabilityId::Aer),
            Ext::Ari(n) => (b.with_ari(n), ExtCapabilityId::Ari),
            Ext::Ats => (b.with_ats(), ExtCapabilityId::Ats),
            Ext::SrIov(t, n, o, s, d) => (
                b.with_sriov(t, n, o, s, DeviceId(d)),
                ExtCapabilityId::SrIov,
            ),
            Ext::Rebar(bar, m, cur) => (b.with_rebar(bar, m, cur), ExtCapabilityId::ResizableBar),
            Ext::Dsn(s) => (b.with_dsn(s), ExtCapabilityId::Dsn),
            Ext::Pasid(w) => (b.with_pasid(w), ExtCapabilityId::Pasid),
            Ext::Pri(c) => (b.with_pri(c), ExtCapabilityId::Pri),
            Ext::Dpc => (b.with_dpc(), ExtCapabilityId::Dpc),
            Ext::Ltr(s, n) => (b.with_ltr(s, n), ExtCapabilityId::Ltr),
            Ext::L1pm(c) => (b.with_l1pm(c), ExtCapabilityId::L1PmSubstates),
            Ext::Vsec(id, r, l) => (b.with_vsec(id, r, l), ExtCapabilityId::Vsec),
            Ext::Dvsec(v, r, l, id) => {
                (b.with_dvsec(VendorId(v), r, l, id), ExtCapabilityId::Dvsec)
            }
            Ext::Raw(id, v, ref body) => (
                b.with_ext_capability(id, v, body),
                ExtCapabilityId::from(id),
            ),
        };
        b = nb;
        want_ext.push(id);
    }
    let asked_len = inp
        .len
        .map(|l| [64usize, 256, 4096, usize::from(l)][usize::from(l % 4)]);
    if let Some(l) = asked_len {
        b = b.with_config_len(l);
    }

    let bytes = match b.bytes() {
        Ok(bytes) => bytes.to_vec(),
        Err(e) => {
            let _ = e.to_string();
            match e {
                BuildError::NoRoom { .. } => {}
                BuildError::BadLength { len } => assert!(
                    asked_len.is_some_and(|l| l == len),
                    "BadLength {len} without asking for it"
                ),
                BuildError::BufferTooSmall { .. } => panic!("bytes() cannot be too small"),
                other => panic!("unexpected {other:?}"),
            }
            return;
        }
    };
    assert_eq!(bytes.len(), b.config_len());
    let mut out = vec![0u8; bytes.len()];
    assert_eq!(b.build_into(&mut out), Ok(bytes.len()));
    assert_eq!(out, bytes, "build_into and bytes differ");
    if !bytes.is_empty() {
        assert!(matches!(
            b.build_into(&mut out[1..]),
            Err(BuildError::BufferTooSmall { .. })
        ));
    }

    let c = ConfigSpace::new_checked(&bytes[..]).expect("builder made a bad length");
    assert_eq!(c.vendor_id(), VendorId(inp.vendor));
    assert_eq!(c.device_id(), DeviceId(inp.device));
    assert_eq!(c.revision(), inp.revision);
    assert_eq!(c.multifunction(), inp.multifunction);
    match inp.bridge {
        Some((p, s, sub)) => {
            assert_eq!(c.header_type(), HeaderType::Bridge);
            let buses = c.bridge_buses().expect("bridge buses");
            assert_eq!(
                (buses.primary, buses.secondary, buses.subordinate),
                (p, s, sub)
            );
        }
        None => {
            assert_eq!(c.header_type(), HeaderType::Normal);
            assert_eq!(c.class_code(), class);
        }
    }

    let got_std: Vec<_> = c
        .capabilities()
        .map(|r| r.unwrap_or_else(|e| panic!("walk error on built space: {e}")))
        .collect();
    assert_eq!(got_std.iter().map(|c| c.id).collect::<Vec<_>>(), want_std);
    let got_ext: Vec<_> = c
        .extended_capabilities()
        .map(|r| r.unwrap_or_else(|e| panic!("ext walk error on built space: {e}")))
        .collect();
    // A raw extended capability with id 0 and version 0 placed last keeps an all-zero
    // header (nothing links from it), which ends a walk by definition.
    let want_ext_cmp = match inp.ext.last() {
        Some(Ext::Raw(0, v, _)) if v & 0xf == 0 => &want_ext[..want_ext.len() - 1],
        _ => &want_ext[..],
    };
    // The extended space is walked only where it exists: 4096 bytes, a PCI Express or
    // PCI-X capability (lspci's rule), and not an alias of the first 256 bytes (the
    // kernel's pci_ext_cfg_is_aliased).
    let pcie_or_pcix = got_std.iter().any(|c| {
        matches!(
            u8::from(c.id),
            0x10 | 0x07 // PCI Express, PCI-X
        )
    });
    let aliased =
        bytes.len() == 4096 && bytes[256..].chunks(256).all(|chunk| chunk == &bytes[..256]);
    let want_ext_cmp: &[ExtCapabilityId] = if bytes.len() == 4096 && pcie_or_pcix && !aliased {
        want_ext_cmp
    } else {
        &[]
    };
    assert_eq!(
        got_ext.iter().map(|c| c.id).collect::<Vec<_>>(),
        want_ext_cmp
    );

    for (cap, s) in got_std.iter().zip(&inp.std) {
        let d = cap.decode(&bytes);
        match (s, d) {
            (Std::Pm(nsr), Some(Ok(Decoded::PowerManagement(pm)))) => {
                assert_eq!(pm.no_soft_reset, *nsr)
            }
            (Std::Msi(_, _), Some(Ok(Decoded::Msi(m)))) => assert!(!m.enabled),
            (Std::MsiX(n, tb, to, pb, po), Some(Ok(Decoded::MsiX(m)))) => {
                assert_eq!(m.table_size, (n.saturating_sub(1) & 0x7ff) + 1);
                assert_eq!((m.table_bar, m.pba_bar), (tb & 7, pb & 7));
                assert_eq!((m.table_offset, m.pba_offset), (to & !7, po & !7));
            }
            (Std::Pcie(pt, flr, slot, _), Some(Ok(Decoded::PciExpress(p)))) => {
                assert_eq!(p.port_type, port_type(*pt));
                assert_eq!(p.flr, *flr);
                if let (Some((n, _)), Some(sc)) = (slot, p.slot_capabilities) {
                    assert_eq!(sc.physical_slot, n & 0x1fff);
                }
            }
            (Std::Af(tp, flr), Some(Ok(Decoded::AdvancedFeatures(af)))) => {
                assert_eq!((af.transactions_pending, af.flr), (*tp, *flr));
            }
            (Std::Vendor(l), Some(Ok(Decoded::VendorSpecific(v)))) => {
                assert_eq!(v.length, (*l).max(3))
            }
            (Std::Raw(..), _) => {}
            (s, d) => panic!("{s:?} decoded as {d:?}"),
        }
    }
    for (cap, e) in got_ext.iter().zip(&inp.ext) {
        let d = cap.decode(&bytes);
        match (e, d) {
            (Ext::Acs(k, ctl), Some(Ok(Decoded::Acs(a)))) => {
                assert_eq!((a.capability.bits(), a.control.bits()), (*k, *ctl));
            }
            (Ext::Ari(n), Some(Ok(Decoded::Ari(a)))) => assert_eq!(a.next_function, *n),
            (Ext::SrIov(t, n, o, s, dev), Some(Ok(Decoded::SrIov(v)))) => {
                assert_eq!(
                    (v.total_vfs, v.num_vfs, v.first_vf_offset, v.vf_stride),
                    (*t, *n, *o, *s)
                );
                assert_eq!(v.vf_device_id, DeviceId(*dev));
            }
            (Ext::Dsn(s), Some(Ok(Decoded::Dsn(d)))) => assert_eq!(d.serial, *s),
            (Ext::Pasid(_), Some(Ok(Decoded::Pasid(_))))
            | (Ext::Aer, Some(Ok(Decoded::Aer(_))))
            | (Ext::Ats, Some(Ok(Decoded::Ats(_))))
            | (Ext::Rebar(..), Some(Ok(Decoded::ResizableBar(_))))
            | (Ext::Pri(_), Some(Ok(Decoded::Pri(_))))
            | (Ext::Dpc, Some(Ok(Decoded::Dpc(_))))
            | (Ext::Ltr(..), Some(Ok(Decoded::Ltr(_))))
            | (Ext::L1pm(_), Some(Ok(Decoded::L1PmSubstates(_))))
            | (Ext::Vsec(..), Some(Ok(Decoded::Vsec(_))))
            | (Ext::Dvsec(..), Some(Ok(Decoded::Dvsec(_))))
            | (Ext::Raw(..), _) => {}
            (e, d) => panic!("{e:?} decoded as {d:?}"),
        }
    }
});
