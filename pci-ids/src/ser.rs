//! `serde::Serialize` for decoded values that host reports carry (feature `serde`):
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
