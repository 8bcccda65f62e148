//! The few config-space facts the model and the verdicts need, decoded from the
//! sysfs `config` bytes with bounded capability walks.
//!
//! This is a small local decoder (header type, bridge bus numbers, PCIe port
//! type and DevCap FLR, PM NoSoftRst, AF TP/FLR, ACS capability/control); it does
//! not depend on the rest of the config-space decoding in `passthru-pci-ids`.

use serde::Serialize;

/// Standard capability ids (PCI Local Bus spec, Appendix H).
const CAP_PM: u8 = 0x01;
const CAP_EXP: u8 = 0x10;
const CAP_AF: u8 = 0x13;
/// Extended capability id of ACS (PCIe base spec 7.7.8).
const EXT_CAP_ACS: u16 = 0x000d;
/// At most this many standard capabilities (192 bytes / 4-byte minimum).
const MAX_CAPS: usize = 48;
/// At most this many extended capabilities ((4096 - 256) / 4).
const MAX_EXT_CAPS: usize = 960;

/// PCIe Device/Port Type (PCIe Capabilities register bits 7:4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PortType {
    /// 0: PCI Express Endpoint.
    Endpoint,
    /// 1: Legacy PCI Express Endpoint.
    LegacyEndpoint,
    /// 4: Root Port of a Root Complex.
    RootPort,
    /// 5: Upstream Port of a switch.
    UpstreamPort,
    /// 6: Downstream Port of a switch.
    DownstreamPort,
    /// 7: PCI Express to PCI/PCI-X bridge.
    PcieToPciBridge,
    /// 8: PCI/PCI-X to PCI Express bridge.
    PciToPcieBridge,
    /// 9: Root Complex Integrated Endpoint.
    RcIntegratedEndpoint,
    /// 10: Root Complex Event Collector.
    RcEventCollector,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for PortType {
    fn from(v: u8) -> PortType {
        match v {
            0 => PortType::Endpoint,
            1 => PortType::LegacyEndpoint,
            4 => PortType::RootPort,
            5 => PortType::UpstreamPort,
            6 => PortType::DownstreamPort,
            7 => PortType::PcieToPciBridge,
            8 => PortType::PciToPcieBridge,
            9 => PortType::RcIntegratedEndpoint,
            10 => PortType::RcEventCollector,
            x => PortType::Unknown(x),
        }
    }
}

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

fn rd8(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}
fn rd16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(off)?, *b.get(off + 1)?]))
}
fn rd32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(off)?,
        *b.get(off + 1)?,
        *b.get(off + 2)?,
        *b.get(off + 3)?,
    ]))
}

impl ConfigFacts {
    /// Decode the facts from `config` bytes. `None` when shorter than the 64-byte header.
    pub fn decode(b: &[u8]) -> Option<ConfigFacts> {
        if b.len() < 64 {
            return None;
        }
        let ht = rd8(b, 0x0e)?;
        let layout = ht & 0x7f;
        let mut f = ConfigFacts {
            len: b.len(),
            header_layout: layout,
            multifunction: ht & 0x80 != 0,
            secondary_bus: (layout == 1).then(|| b[0x19]),
            subordinate_bus: (layout == 1).then(|| b[0x1a]),
            caps_read: false,
            ext_caps_read: false,
            pcie: None,
            pm: None,
            af: None,
            acs: None,
        };
        let status = rd16(b, 0x06)?;
        if b.len() >= 256 {
            f.caps_read = true;
            if status & 0x10 != 0 {
                f.walk_caps(b);
            }
        }
        if b.len() >= 4096 && f.pcie.is_some() {
            f.ext_caps_read = true;
            f.walk_ext_caps(b);
        }
        Some(f)
    }

    fn walk_caps(&mut self, b: &[u8]) {
        let mut ptr = b[0x34] & 0xfc;
        for _ in 0..MAX_CAPS {
            if ptr < 0x40 {
                break;
            }
            let off = usize::from(ptr);
            let (Some(id), Some(next)) = (rd8(b, off), rd8(b, off + 1)) else {
                break;
            };
            match id {
                CAP_PM if self.pm.is_none() => {
                    if let Some(pmcsr) = rd16(b, off + 4) {
                        self.pm = Some(PmFacts {
                            offset: ptr,
                            no_soft_reset: pmcsr & 0x0008 != 0,
                        });
                    }
                }
                CAP_EXP if self.pcie.is_none() => {
                    if let (Some(flags), Some(devcap)) = (rd16(b, off + 2), rd32(b, off + 4)) {
                        self.pcie = Some(PcieFacts {
                            offset: ptr,
                            port_type: PortType::from(((flags >> 4) & 0xf) as u8),
                            flr: devcap & (1 << 28) != 0,
                        });
                    }
                }
                CAP_AF if self.af.is_none() => {
                    if let Some(cap) = rd8(b, off + 3) {
                        self.af = Some(AfFacts {
                            offset: ptr,
                            tp: cap & 0x01 != 0,
                            flr: cap & 0x02 != 0,
                        });
                    }
                }
                _ => {}
            }
            ptr = next & 0xfc;
        }
    }

    fn walk_ext_caps(&mut self, b: &[u8]) {
        let mut off = 0x100usize;
        for _ in 0..MAX_EXT_CAPS {
            let Some(h) = rd32(b, off) else { break };
            if h == 0 || h == 0xffff_ffff {
                break;
            }
            if (h & 0xffff) as u16 == EXT_CAP_ACS && self.acs.is_none() {
                if let (Some(cap), Some(ctl)) = (rd16(b, off + 4), rd16(b, off + 6)) {
                    self.acs = Some(AcsFacts {
                        offset: off as u16,
                        capability: cap,
                        control: ctl,
                    });
                }
            }
            let next = ((h >> 20) & 0xffc) as usize;
            if next < 0x100 {
                break;
            }
            off = next;
        }
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
        b[0x40] = CAP_EXP;
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
            "/../tests/data/captures/tcg-amd/config/0000:03:00.0.bin"
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
            "/../tests/data/captures/tcg-amd/config/0000:08:00.0.bin"
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
            "/../tests/data/captures/tcg-amd/config/0000:00:02.0.bin"
        ))
        .unwrap();
        let f = ConfigFacts::decode(&b).unwrap();
        assert_eq!(f.pcie.unwrap().port_type, PortType::RootPort);
        assert!(f.acs.is_some());
    }
}
