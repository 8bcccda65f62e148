//! lspci's device filters for `passthru list`: `-s [[[[domain]:]bus]:][device][.[func]]`
//! and `-d [vendor]:[device][:class[:prog-if]]` (pciutils' lspci(8) and its
//! `pci_filter_parse_slot` / `pci_filter_parse_id`): every part hex, an empty part or
//! `*` matches anything.

use passthru_pci_ids::{Bdf, ClassCode, DeviceId, VendorId};
use std::str::FromStr;

/// One hex field of at most `max`, or any (empty or `*`).
fn field(s: &str, max: u32, what: &str) -> Result<Option<u32>, String> {
    if s.is_empty() || s == "*" {
        return Ok(None);
    }
    match u32::from_str_radix(s, 16) {
        Ok(v) if v <= max && !s.starts_with('+') => Ok(Some(v)),
        _ => Err(format!("{what} {s:?} is not a hex number up to {max:x}")),
    }
}

/// `-s`: which addresses to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotFilter {
    domain: Option<u32>,
    bus: Option<u32>,
    device: Option<u32>,
    function: Option<u32>,
}

impl FromStr for SlotFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<SlotFilter, String> {
        let (rest, func) = match s.split_once('.') {
            Some((r, f)) => (r, field(f, 7, "function")?),
            None => (s, None),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() > 3 {
            return Err(format!("{s:?} is not [[[[domain]:]bus]:][device][.[func]]"));
        }
        let mut it = parts.iter().rev();
        let device = field(it.next().copied().unwrap_or(""), 0x1f, "device")?;
        let bus = field(it.next().copied().unwrap_or(""), 0xff, "bus")?;
        let domain = field(it.next().copied().unwrap_or(""), 0xffff, "domain")?;
        Ok(SlotFilter {
            domain,
            bus,
            device,
            function: func,
        })
    }
}

impl SlotFilter {
    /// Whether `b` matches.
    pub fn matches(&self, b: Bdf) -> bool {
        let ok = |f: Option<u32>, v: u32| f.is_none_or(|f| f == v);
        ok(self.domain, u32::from(b.domain))
            && ok(self.bus, u32::from(b.bus))
            && ok(self.device, u32::from(b.device))
            && ok(self.function, u32::from(b.function))
    }
}

/// `-d`: which ids (and class) to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdFilter {
    vendor: Option<u32>,
    device: Option<u32>,
    /// Base class and subclass (`0300`).
    class: Option<u32>,
    prog_if: Option<u32>,
}

impl FromStr for IdFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<IdFilter, String> {
        let parts: Vec<&str> = s.split(':').collect();
        if !(2..=4).contains(&parts.len()) {
            return Err(format!("{s:?} is not [vendor]:[device][:class[:prog-if]]"));
        }
        let get = |i: usize| parts.get(i).copied().unwrap_or("");
        Ok(IdFilter {
            vendor: field(get(0), 0xffff, "vendor")?,
            device: field(get(1), 0xffff, "device")?,
            class: field(get(2), 0xffff, "class")?,
            prog_if: field(get(3), 0xff, "prog-if")?,
        })
    }
}

impl IdFilter {
    /// Whether a function with these ids matches.
    pub fn matches(&self, v: VendorId, d: DeviceId, c: ClassCode) -> bool {
        let ok = |f: Option<u32>, x: u32| f.is_none_or(|f| f == x);
        ok(self.vendor, u32::from(v.0))
            && ok(self.device, u32::from(d.0))
            && ok(self.class, u32::from(c.class) << 8 | u32::from(c.subclass))
            && ok(self.prog_if, u32::from(c.prog_if))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bdf {
        s.parse().unwrap()
    }

    /// The forms lspci(8) documents for -s.
    #[test]
    fn slot_filters_as_lspci_reads_them() {
        let m = |f: &str, a: &str| f.parse::<SlotFilter>().unwrap().matches(b(a));
        assert!(m("0b:00", "0000:0b:00.1"));
        assert!(m("0b:00.1", "0000:0b:00.1"));
        assert!(!m("0b:00.1", "0000:0b:00.0"));
        assert!(m("0b:", "0000:0b:1f.7"));
        assert!(!m("0b:", "0000:0c:00.0"));
        assert!(m(".1", "0000:05:00.1"));
        assert!(!m(".1", "0000:05:00.0"));
        assert!(m("0001:00:02", "0001:00:02.0"));
        assert!(!m("0001:00:02", "0000:00:02.0"));
        assert!(m("*:*.3", "0000:03:04.3"));
        assert!(m("", "0000:03:04.3"));
        for bad in ["0b:00.8", "g:00", "1:2:3:4", "100:00", "0b:20"] {
            assert!(bad.parse::<SlotFilter>().is_err(), "{bad}");
        }
    }

    /// The forms lspci(8) documents for -d.
    #[test]
    fn id_filters_as_lspci_reads_them() {
        let gpu = (
            VendorId(0x1002),
            DeviceId(0x7300),
            ClassCode::from_u32(0x030000),
        );
        let m = |f: &str| f.parse::<IdFilter>().unwrap().matches(gpu.0, gpu.1, gpu.2);
        assert!(m("1002:"));
        assert!(m("1002:7300"));
        assert!(m(":7300"));
        assert!(m("::0300"));
        assert!(m("::0300:00"));
        assert!(!m("::0403"));
        assert!(!m("10de:"));
        assert!(!m("::0300:01"));
        for bad in ["1002", "1002:7300:0300:00:1", "xyz:", "10020:"] {
            assert!(bad.parse::<IdFilter>().is_err(), "{bad}");
        }
    }
}
