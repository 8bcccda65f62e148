//! The few config-space facts the model and the verdicts need (header type,
//! bridge bus numbers, PCIe port type and DevCap FLR, PM No_Soft_Reset, AF TP/FLR,
//! ACS capability/control), decoded from the sysfs `config` bytes with
//! `passthru-pci-ids`' bounded view and capability decoders, and kept in a
//! serializable form.

use passthru_pci_ids::caps::{CapabilityId, ExtCapabilityId};
use passthru_pci_ids::ConfigSpace;
use serde::Serialize;

/// PCIe Device/Port Type (PCIe Capabilities register bits 7:4): the decoder's own type.
pub use passthru_pci_ids::caps::PortType;

/// What the PCI Express capability says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PcieFacts {
    /// Offset of the capability.
    pub offset: u8,
    /// Device/Port Type.
    pub port_type: PortType,
    /// Device Capabilities bit 28: Function Level Reset capable.
    pub flr: bool,
}

/// What the Power Management capability says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PmFacts {
    /// Offset of the capability.
    pub offset: u8,
    /// PMCSR bit 3, No_Soft_Reset: set means D3hot->D0 keeps state (no PM reset).
    pub no_soft_reset: bool,
}

/// What the Advanced Features capability says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AfFacts {
    /// Offset of the capability.
    pub offset: u8,
    /// AF Capabilities bit 0: Transactions Pending.
    pub tp: bool,
    /// AF Capabilities bit 1: Function Level Reset.
    pub flr: bool,
}

/// What the ACS extended capability says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AcsFacts {
    /// Offset of the capability.
    pub offset: u16,
    /// ACS Capability register.
    pub capability: u16,
    /// ACS Control register.
    pub control: u16,
}

impl AcsFacts {
    /// Source Validation, Request Redirect, Completion Redirect, Upstream Forwarding (libvirt's mask).
    pub const LIBVIRT_MASK: u16 = 0x001d;

    /// Whether SV, RR, CR and UF are all enabled (libvirt's rule for downstream ports).
    pub fn isolating(&self) -> bool {
        self.control & Self::LIBVIRT_MASK == Self::LIBVIRT_MASK
    }
}

/// The config-space facts of one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigFacts {
    /// Bytes of config space available (64 for a non-root reader, 256 or 4096 for root).
    pub len: usize,
    /// Header layout (0 endpoint, 1 PCI-to-PCI bridge, 2 CardBus).
    pub header_layout: u8,
    /// Header type bit 7: the device has more than one function.
    pub multifunction: bool,
    /// Secondary bus number (bridges only).
    pub secondary_bus: Option<u8>,
    /// Subordinate bus number (bridges only).
    pub subordinate_bus: Option<u8>,
    /// Whether the standard capability list could be read (256+ bytes and Status bit 4).
    pub caps_read: bool,
    /// Whether the extended capability list could be read (4096 bytes).
    pub ext_caps_read: bool,
    /// The PCI Express capability, when present.
    pub pcie: Option<PcieFacts>,
    /// The Power Management capability, when present.
    pub pm: Option<PmFacts>,
    /// The Advanced Features capability, when present.
    pub af: Option<AfFacts>,
    /// The ACS extended capability, when present.
    pub acs: Option<AcsFacts>,
}

impl ConfigFacts {
    /// Decode the facts from `config` bytes. `None` when shorter than the 64-byte
    /// header. A length between the valid sizes (64, 256, 4096) is cut to the
    /// largest valid prefix.
    pub fn decode(b: &[u8]) -> Option<ConfigFacts> {
        let cfg = ConfigSpace::new_prefix(b).ok()?;
        let ht = cfg.header_type_raw();
        let layout = ht & 0x7f;
        let buses = cfg.bridge_buses();
        let caps_read = cfg.has_capability_area();
        let ext_caps_read = cfg.has_extended_area();
        let pcie = cfg
            .find_capability(CapabilityId::PciExpress)
            .and_then(|off| {
                let p = passthru_pci_ids::caps::PciExpress::parse(cfg.as_bytes(), off).ok()?;
                Some(PcieFacts {
                    offset: off as u8,
                    port_type: p.port_type,
                    flr: p.flr,
                })
            });
        let pm = cfg
            .find_capability(CapabilityId::PowerManagement)
            .and_then(|off| {
                let p = passthru_pci_ids::caps::PowerManagement::parse(cfg.as_bytes(), off).ok()?;
                Some(PmFacts {
                    offset: off as u8,
                    no_soft_reset: p.no_soft_reset,
                })
            });
        let af = cfg
            .find_capability(CapabilityId::AdvancedFeatures)
            .and_then(|off| {
                let a =
                    passthru_pci_ids::caps::AdvancedFeatures::parse(cfg.as_bytes(), off).ok()?;
                Some(AfFacts {
                    offset: off as u8,
                    tp: a.transactions_pending,
                    flr: a.flr,
                })
            });
        let acs = cfg
            .find_ext_capability(ExtCapabilityId::Acs)
            .and_then(|off| {
                let a = passthru_pci_ids::caps::Acs::parse(cfg.as_bytes(), off).ok()?;
                Some(AcsFacts {
                    offset: off,
                    capability: a.capability.bits(),
                    control: a.control.bits(),
                })
            });
        Some(ConfigFacts {
            len: cfg.len(),
            header_layout: layout,
            multifunction: cfg.multifunction(),
            secondary_bus: buses.map(|x| x.secondary),
            subordinate_bus: buses.map(|x| x.subordinate),
            caps_read,
            ext_caps_read,
            pcie,
            pm,
            af,
            acs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_config_has_no_facts() {
        assert!(ConfigFacts::decode(&[0u8; 63]).is_none());
        let f = ConfigFacts::decode(&[0u8; 64]).unwrap();
        assert!(!f.caps_read);
        assert!(f.pcie.is_none());
    }

    #[test]
    fn self_pointing_capability_ends() {
        let mut b = vec![0u8; 256];
        b[0x06] = 0x10;
        b[0x34] = 0x40;
        b[0x40] = 0x09; // vendor-specific
        b[0x41] = 0x40; // points at itself
        let f = ConfigFacts::decode(&b).unwrap();
        assert!(f.pm.is_none());
    }

    #[test]
    fn self_pointing_extended_capability_ends() {
        let mut b = vec![0u8; 4096];
        b[0x06] = 0x10;
        b[0x34] = 0x40;
        b[0x40] = 0x10; // PCI Express
        b[0x42] = 0x02;
        // ext cap at 0x100 with next = 0x100
        b[0x100..0x104].copy_from_slice(&(0x0001u32 | (0x100 << 20)).to_le_bytes());
        let f = ConfigFacts::decode(&b).unwrap();
        assert!(f.ext_caps_read);
        assert!(f.acs.is_none());
    }

    /// Real capture: 0000:03:00.0 virtio-net (modern), the kernel listed `flr pm bus`.
    #[test]
    fn capture_virtio_net_has_flr_and_pm_reset() {
        let b = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/tcg-amd/0000-03-00.0.bin"
        ))
        .unwrap();
        let f = ConfigFacts::decode(&b).unwrap();
        assert_eq!(f.pcie.unwrap().port_type, PortType::Endpoint);
        assert!(f.pcie.unwrap().flr);
        assert!(!f.pm.unwrap().no_soft_reset);
    }

    /// Real capture: 0000:08:00.0 xio3130 downstream port, no ACS (grouped with its endpoint).
    #[test]
    fn capture_switch_downstream_port_lacks_acs() {
        let b = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/tcg-amd/0000-08-00.0.bin"
        ))
        .unwrap();
        let f = ConfigFacts::decode(&b).unwrap();
        assert_eq!(f.pcie.unwrap().port_type, PortType::DownstreamPort);
        assert!(f.acs.is_none());
        assert_eq!(f.secondary_bus, Some(0x09));
    }

    /// Real capture: 0000:00:02.0 pcie-root-port has ACS (own group).
    #[test]
    fn capture_root_port_has_acs() {
        let b = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/tcg-amd/0000-00-02.0.bin"
        ))
        .unwrap();
        let f = ConfigFacts::decode(&b).unwrap();
        assert_eq!(f.pcie.unwrap().port_type, PortType::RootPort);
        assert!(f.acs.is_some());
    }

    /// The port type's JSON: the kebab-case name, an unnamed value as `{"unknown": raw}`.
    #[test]
    fn port_type_json() {
        let j = |p: PortType| serde_json::to_string(&p).unwrap();
        assert_eq!(j(PortType::RootPort), r#""root-port""#);
        assert_eq!(
            j(PortType::RcIntegratedEndpoint),
            r#""rc-integrated-endpoint""#
        );
        assert_eq!(j(PortType::from(3)), r#"{"unknown":3}"#);
    }
}
