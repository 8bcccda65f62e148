//! Device arguments: a BDF, a slot or `vendor:device`, resolved against a host.

use crate::error::{Error, Result};
use crate::model::Host;
use passthru_pci_ids::{Bdf, DeviceId, Slot, VendorId};
use std::fmt;
use std::str::FromStr;

/// What a user names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceSpec {
    /// One function: `0000:0b:00.0` or `0b:00.0`.
    Bdf(Bdf),
    /// Every function of a slot: `0b:00` or `0000:0b:00` (Proxmox's `bus:dev`).
    Slot(Slot),
    /// Every device with these ids: `1002:7300` (four hex digits each).
    Ids(VendorId, DeviceId),
}

impl FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<DeviceSpec> {
        let bad = || Error::BadSpec {
            spec: s.to_string(),
        };
        if s.contains('.') {
            return s.parse::<Bdf>().map(DeviceSpec::Bdf).map_err(|_| bad());
        }
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() == 2 && parts[0].len() == 4 && parts[1].len() == 4 {
            let v = parts[0].parse::<VendorId>().map_err(|_| bad())?;
            let d = parts[1].parse::<DeviceId>().map_err(|_| bad())?;
            return Ok(DeviceSpec::Ids(v, d));
        }
        s.parse::<Slot>().map(DeviceSpec::Slot).map_err(|_| bad())
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Bdf(b) => write!(f, "{b}"),
            DeviceSpec::Slot(s) => write!(f, "{s}"),
            DeviceSpec::Ids(v, d) => write!(f, "{v}:{d}"),
        }
    }
}

impl Host {
    /// The devices `spec` names, sorted (companions not added: see [`Host::with_companions`]).
    /// An error when nothing matches.
    ///
    /// # Errors
    ///
    /// [`Error::NoMatch`] naming `spec` when no device matches it.
    pub fn resolve(&self, spec: &DeviceSpec) -> Result<Vec<Bdf>> {
        let v: Vec<Bdf> = self
            .scan()
            .filter(|d| match spec {
                DeviceSpec::Bdf(b) => d.bdf == *b,
                DeviceSpec::Slot(s) => d.bdf.slot() == *s,
                DeviceSpec::Ids(v, i) => d.vendor == *v && d.device == *i,
            })
            .map(|d| d.bdf)
            .collect();
        if v.is_empty() {
            return Err(Error::NoMatch {
                spec: spec.to_string(),
            });
        }
        Ok(v)
    }

    /// `bdfs` plus the companion functions they imply: function 0 of a display
    /// device brings the other functions of its slot (HDMI audio, USB-C), as
    /// Proxmox does for `bus:dev`. Sorted, without duplicates.
    pub fn with_companions(&self, bdfs: &[Bdf]) -> Vec<Bdf> {
        let mut out: Vec<Bdf> = bdfs.to_vec();
        for b in bdfs {
            if let Some(d) = self.device(*b) {
                if b.function == 0 && d.class.is_display() {
                    out.extend(self.slot_siblings(*b).iter().map(|s| s.bdf));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// What a request names, as `check` reads it: every device the specs match, plus
    /// the companion functions they imply; no spec means every display device (and
    /// its companions). Sorted, without duplicates; an error when a spec matches nothing.
    ///
    /// # Errors
    ///
    /// [`Error::NoMatch`] naming the first spec that matches no device.
    pub fn request(&self, specs: &[DeviceSpec]) -> Result<Vec<Bdf>> {
        let mut bdfs = Vec::new();
        for s in specs {
            bdfs.extend(self.resolve(s)?);
        }
        if specs.is_empty() {
            bdfs = self.display_devices();
        }
        Ok(self.with_companions(&bdfs))
    }

    /// Every display-class (03xx) device: what `check` looks at by default.
    pub fn display_devices(&self) -> Vec<Bdf> {
        self.scan()
            .filter(|d| d.class.is_display())
            .map(|d| d.bdf)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_forms() {
        assert!(matches!("0b:00.0".parse(), Ok(DeviceSpec::Bdf(_))));
        assert!(matches!("0000:0b:00.1".parse(), Ok(DeviceSpec::Bdf(_))));
        assert!(matches!("0b:00".parse(), Ok(DeviceSpec::Slot(_))));
        assert!(matches!("0000:0b:00".parse(), Ok(DeviceSpec::Slot(_))));
        assert_eq!(
            "1002:7300".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::Ids(VendorId(0x1002), DeviceId(0x7300))
        );
        for bad in ["", "gpu", "0b:00.9", "1002:73000", "zz:00", "0b:20"] {
            let e = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    proptest::proptest! {
        /// Display then parse gives the same spec, for every form.
        #[test]
        fn display_parse_round_trip(d in 0u16.., bus in 0u8.., dev in 0u8..32, f in 0u8..8, v in 0u16.., i in 0u16..) {
            let specs = [
                DeviceSpec::Bdf(Bdf::new(d, bus, dev, f).unwrap()),
                DeviceSpec::Slot(Slot { domain: d, bus, device: dev }),
                DeviceSpec::Ids(VendorId(v), DeviceId(i)),
            ];
            for s in specs {
                proptest::prop_assert_eq!(s.to_string().parse::<DeviceSpec>().unwrap(), s);
            }
        }

        /// Arbitrary text never panics: a spec or an error naming the input.
        #[test]
        fn arbitrary_text_parses_or_names_itself(t in "\\PC{0,24}") {
            if let Err(e) = t.parse::<DeviceSpec>() {
                let quoted = format!("{:?}", t);
                proptest::prop_assert!(e.to_string().contains(&quoted));
            }
        }
    }
}
