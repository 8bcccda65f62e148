//! serde impls for values that host reports carry (feature `serde`):
//! named values as kebab-case strings, an unnamed one as `{"unknown": raw}`.

use crate::caps::PortType;
use serde::{Serialize, Serializer};

impl Serialize for PortType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let name = match self {
            PortType::Endpoint => "endpoint",
            PortType::LegacyEndpoint => "legacy-endpoint",
            PortType::RootPort => "root-port",
            PortType::UpstreamPort => "upstream-port",
            PortType::DownstreamPort => "downstream-port",
            PortType::PcieToPciBridge => "pcie-to-pci-bridge",
            PortType::PciToPcieBridge => "pci-to-pcie-bridge",
            PortType::RcIntegratedEndpoint => "rc-integrated-endpoint",
            PortType::RcEventCollector => "rc-event-collector",
            PortType::Unknown(raw) => {
                return s.serialize_newtype_variant("PortType", 9, "unknown", raw)
            }
        };
        s.serialize_str(name)
    }
}

/// Addresses and ids serialize as the text they display (`0000:0b:00.0`, `10de`,
/// `030000`: lowercase hex) and deserialize from it, as the `FromStr` impls take it.
macro_rules! as_text {
    ($($t:ident: $what:literal, $pattern:literal;)*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }

        #[cfg(feature = "schemars")]
        impl schemars::JsonSchema for $t {
            fn schema_name() -> alloc::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "description": $what,
                    "pattern": $pattern,
                })
            }
        }
    )*};
}

use crate::ids::{Bdf, ClassCode, DeviceId, VendorId};

as_text! {
    Bdf: "a PCI address, domain:bus:device.function in lowercase hex (0000:0b:00.0)",
        "^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\\.[0-7]$";
    VendorId: "a vendor id, 4 lowercase hex digits (10de)", "^[0-9a-f]{4}$";
    DeviceId: "a device id, 4 lowercase hex digits (2204)", "^[0-9a-f]{4}$";
    ClassCode: "a class code, class subclass prog-if as 6 lowercase hex digits (030000)",
        "^[0-9a-f]{6}$";
}
