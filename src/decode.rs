//! A decoded config space as a typed, serializable value: what `passthru decode`
//! prints, in JSON and as text, both rendered from this one value.
//!
//! Only what the input gives is stated: a raw config file carries no address, so its
//! [`DecodedDevice::bdf`] is `None`; a 64-byte (non-root) copy carries no
//! capabilities, so its reset facts ([`DecodedDevice::flr`], ...) are `None`
//! (unknown), not "no".
//!
//! ```
//! use passthru::decode::DecodedDevice;
//!
//! // The first 64 bytes of an e1000e, as a non-root reader sees them.
//! let mut bytes = vec![0u8; 64];
//! bytes[0..4].copy_from_slice(&[0x86, 0x80, 0xd3, 0x10]);
//! let d = DecodedDevice::new(None, &bytes, None);
//! assert_eq!((d.vendor_id.as_str(), d.device_id.as_str()), ("8086", "10d3"));
//! assert_eq!(d.bdf, None);
//! assert_eq!(d.flr, None, "unknown without the capabilities");
//! // JSON round trip: a Rust consumer reads passthru's output back.
//! let json = serde_json::to_string(&d).unwrap();
//! assert_eq!(serde_json::from_str::<DecodedDevice>(&json).unwrap(), d);
//! ```

use passthru_pci_ids::caps::{Decoded, FieldValue, WalkError};
use passthru_pci_ids::config::Bar;
use passthru_pci_ids::db::PciIdsIndex;
use passthru_pci_ids::{Bdf, ConfigSpace};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One decoded capability field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Field {
    /// A flag.
    Bool(bool),
    /// A number.
    Int(u64),
    /// A name.
    Str(String),
}

/// What a capability's decoder made of it (both kinds of capability).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Contents {
    /// Decoded fields, when this capability has a decoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, Field>>,
    /// Why decoding it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Contents {
    /// From a decoder's answer: fields, an error, or nothing (no decoder).
    fn of<E: std::fmt::Display>(dec: Option<Result<Decoded, E>>) -> Contents {
        match dec {
            Some(Ok(d)) => Contents {
                fields: Some(fields(&d)),
                error: None,
            },
            Some(Err(e)) => Contents {
                fields: None,
                error: Some(e.to_string()),
            },
            None => Contents::default(),
        }
    }
}

/// A standard capability, in walk order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Capability {
    /// Capability id.
    pub id: u8,
    /// Offset in config space.
    pub offset: u16,
    /// The specification's name.
    pub name: String,
    /// What its decoder made of it.
    #[serde(flatten)]
    pub contents: Contents,
}

/// An extended (PCIe) capability, in walk order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ExtCapability {
    /// Extended capability id.
    pub id: u16,
    /// Offset in config space.
    pub offset: u16,
    /// Capability version.
    pub version: u8,
    /// The specification's name.
    pub name: String,
    /// What its decoder made of it.
    #[serde(flatten)]
    pub contents: Contents,
}

/// Where a capability walk stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct WalkStop {
    /// Offset of the bad pointer or header.
    pub offset: u16,
    /// What is wrong there.
    pub message: String,
}

/// A base address register as programmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct BarValue {
    /// BAR number.
    pub index: usize,
    /// `memory32`, `memory1m`, `memory64`, `memory64-truncated`, `memory-reserved`, `io`.
    pub kind: String,
    /// The address programmed.
    pub address: u64,
    /// Prefetchable memory.
    pub prefetchable: bool,
}

/// A bridge's bus numbers and Bridge Control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct BridgeValue {
    /// Primary bus.
    pub primary: u8,
    /// Secondary bus.
    pub secondary: u8,
    /// Subordinate bus.
    pub subordinate: u8,
    /// Bridge Control register.
    pub control: u16,
    /// Bridge Control bit 6 (Secondary Bus Reset; CardBus Reset on a CardBus bridge).
    pub secondary_bus_reset: bool,
}

/// ACS capability and control registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct AcsValue {
    /// ACS Capability register.
    pub capability: u16,
    /// ACS Control register.
    pub control: u16,
}

/// Names from pci.ids: each present when a database was found and knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Names {
    /// `Vendor Device` (`Vendor Device 1234` for a device pci.ids lacks), the `name`
    /// `list` and `check` give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_name: Option<String>,
    /// Device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Base class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Subclass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subclass_name: Option<String>,
    /// Programming interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prog_if_name: Option<String>,
    /// Subsystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_name: Option<String>,
    /// Subsystem vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_vendor_name: Option<String>,
}

/// One decoded function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct DecodedDevice {
    /// Its address, when the input gave one (an lspci dump does, a raw file does not).
    #[schemars(regex(pattern = r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$"))]
    pub bdf: Option<String>,
    /// Something answers (vendor id neither 0xffff nor 0).
    pub present: bool,
    /// Vendor id, lowercase hex.
    #[schemars(regex(pattern = r"^[0-9a-f]{4}$"))]
    pub vendor_id: String,
    /// Device id, lowercase hex.
    #[schemars(regex(pattern = r"^[0-9a-f]{4}$"))]
    pub device_id: String,
    /// Class code, six lowercase hex digits.
    #[schemars(regex(pattern = r"^[0-9a-f]{6}$"))]
    pub class: String,
    /// Header layout (0 endpoint, 1 bridge, 2 CardBus).
    pub header_type: u8,
    /// The multifunction bit.
    pub multifunction: bool,
    /// Revision.
    pub revision: u8,
    /// Bytes of config space given.
    pub config_len: usize,
    /// Subsystem vendor id, lowercase hex.
    #[schemars(regex(pattern = r"^[0-9a-f]{4}$"))]
    pub subsystem_vendor_id: Option<String>,
    /// Subsystem id, lowercase hex.
    #[schemars(regex(pattern = r"^[0-9a-f]{4}$"))]
    pub subsystem_id: Option<String>,
    /// Command register.
    pub command: u16,
    /// Status register.
    pub status: u16,
    /// Interrupt pin (0 none, 1 INTA ... 4 INTD).
    pub interrupt_pin: u8,
    /// Base address registers.
    pub bars: Vec<BarValue>,
    /// Bus numbers and Bridge Control (bridges).
    pub bridge: Option<BridgeValue>,
    /// Standard capabilities.
    pub capabilities: Vec<Capability>,
    /// Extended capabilities.
    pub extended_capabilities: Vec<ExtCapability>,
    /// Where a walk stopped.
    pub capability_errors: Vec<WalkStop>,
    /// Whether the input holds the capability area (more than the 64-byte header).
    pub capabilities_readable: bool,
    /// Whether the function has an extended space to walk (4096 bytes, PCIe or PCI-X,
    /// not an alias of its first 256 bytes).
    pub extended_config: bool,
    /// PCIe port type.
    pub pcie_port_type: Option<String>,
    /// FLR through the PCIe capability; `None` when the capabilities were not given.
    pub flr: Option<bool>,
    /// FLR through Advanced Features (TP and FLR); `None` when unknown.
    pub af_flr: Option<bool>,
    /// PM No_Soft_Reset; `None` without a PM capability or when unknown.
    pub pm_no_soft_reset: Option<bool>,
    /// ACS registers.
    pub acs: Option<AcsValue>,
    /// Names from pci.ids.
    #[serde(flatten)]
    pub names: Names,
}

/// `Vendor Device` from pci.ids, or `Vendor Device 1234` when the vendor is known and the
/// device is not: the `name` of every command's JSON.
pub fn device_name(
    idx: Option<&PciIdsIndex<'_>>,
    v: passthru_pci_ids::VendorId,
    d: passthru_pci_ids::DeviceId,
) -> Option<String> {
    let idx = idx?;
    let vendor = idx.vendor(v)?;
    Some(match idx.device(v, d) {
        Some(dev) => format!("{vendor} {dev}"),
        None => format!("{vendor} Device {d}"),
    })
}

fn hex16(v: u16) -> String {
    format!("{v:04x}")
}

fn fields(d: &Decoded) -> BTreeMap<String, Field> {
    let mut m = BTreeMap::new();
    d.fields(&mut |name, v| {
        let v = match v {
            FieldValue::Bool(b) => Field::Bool(b),
            FieldValue::Int(i) => Field::Int(i),
            FieldValue::Str(s) => Field::Str(s.to_string()),
        };
        m.insert(name.to_string(), v);
    });
    m
}

fn stop(e: &WalkError) -> WalkStop {
    WalkStop {
        offset: e.offset(),
        message: e.to_string(),
    }
}

fn bar(index: usize, b: &Bar) -> BarValue {
    let (kind, address, prefetchable) = match *b {
        Bar::Memory32 {
            address,
            prefetchable,
        } => ("memory32", u64::from(address), prefetchable),
        Bar::Memory1M {
            address,
            prefetchable,
        } => ("memory1m", u64::from(address), prefetchable),
        Bar::Memory64 {
            address,
            prefetchable,
        } => ("memory64", address, prefetchable),
        Bar::Memory64Truncated { address_low } => {
            ("memory64-truncated", u64::from(address_low), false)
        }
        Bar::MemoryReserved { raw } => ("memory-reserved", u64::from(raw), false),
        Bar::Io { address } => ("io", u64::from(address), false),
        _ => ("unknown", 0, false),
    };
    BarValue {
        index,
        kind: kind.to_string(),
        address,
        prefetchable,
    }
}

impl DecodedDevice {
    /// Decode `bytes` (at least the 64-byte header; shorter input reads as zeros
    /// beyond its end), named `bdf` when the input gave an address, with names from
    /// `idx` when given.
    pub fn new(bdf: Option<Bdf>, bytes: &[u8], idx: Option<&PciIdsIndex<'_>>) -> DecodedDevice {
        let c = ConfigSpace::new_unchecked(bytes);
        let (v, d, cc) = (c.vendor_id(), c.device_id(), c.class_code());
        let subsystem = c.subsystem();
        let mut capabilities = Vec::new();
        let mut capability_errors = Vec::new();
        let readable = c.has_capability_area();
        if readable {
            for cap in c.capabilities() {
                match cap {
                    Ok(cap) => {
                        capabilities.push(Capability {
                            id: u8::from(cap.id),
                            offset: cap.offset,
                            name: cap.id.name().to_string(),
                            contents: Contents::of(cap.decode(bytes)),
                        });
                    }
                    Err(e) => capability_errors.push(stop(&e)),
                }
            }
        }
        let mut extended_capabilities = Vec::new();
        for cap in c.extended_capabilities() {
            match cap {
                Ok(cap) => {
                    extended_capabilities.push(ExtCapability {
                        id: u16::from(cap.id),
                        offset: cap.offset,
                        version: cap.version,
                        name: cap.id.name().to_string(),
                        contents: Contents::of(cap.decode(bytes)),
                    });
                }
                Err(e) => capability_errors.push(stop(&e)),
            }
        }
        let bridge = c.bus_numbers().map(|b| {
            let control = c.bridge_control().map_or(0, |x| x.bits());
            BridgeValue {
                primary: b.primary,
                secondary: b.secondary,
                subordinate: b.subordinate,
                control,
                secondary_bus_reset: control & (1 << 6) != 0,
            }
        });
        let names = idx.map_or_else(Names::default, |ix| Names {
            name: device_name(Some(ix), v, d),
            vendor_name: ix.vendor(v).map(str::to_string),
            device_name: ix.device(v, d).map(str::to_string),
            class_name: ix.class(cc.class).map(str::to_string),
            subclass_name: ix.subclass(cc.class, cc.subclass).map(str::to_string),
            prog_if_name: ix
                .prog_if(cc.class, cc.subclass, cc.prog_if)
                .map(str::to_string),
            subsystem_name: subsystem
                .and_then(|(sv, sd)| ix.subsystem(v, d, sv, sd))
                .map(str::to_string),
            subsystem_vendor_name: subsystem
                .and_then(|(sv, _)| ix.vendor(sv))
                .map(str::to_string),
        });
        DecodedDevice {
            bdf: bdf.map(|b| b.to_string()),
            present: c.present(),
            vendor_id: hex16(v.0),
            device_id: hex16(d.0),
            class: cc.to_string(),
            header_type: u8::from(c.header_type()),
            multifunction: c.multifunction(),
            revision: c.revision(),
            config_len: bytes.len(),
            subsystem_vendor_id: subsystem.map(|x| hex16(x.0 .0)),
            subsystem_id: subsystem.map(|x| hex16(x.1 .0)),
            command: c.command().bits(),
            status: c.status().bits(),
            interrupt_pin: u8::from(c.interrupt_pin()),
            bars: c.bars().map(|(i, b)| bar(i, &b)).collect(),
            bridge,
            capabilities,
            extended_capabilities,
            capability_errors,
            capabilities_readable: readable,
            extended_config: c.has_extended_config(),
            pcie_port_type: c.pcie_port_type().map(|p| p.name().to_string()),
            flr: readable.then(|| c.flr()),
            af_flr: readable.then(|| c.af_flr()),
            pm_no_soft_reset: c.pm_no_soft_reset().filter(|_| readable),
            acs: c.acs().map(|a| AcsValue {
                capability: a.capability.bits(),
                control: a.control.bits(),
            }),
            names,
        }
    }
}
