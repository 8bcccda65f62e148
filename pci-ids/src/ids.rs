//! Identifiers: PCI addresses ([`Bdf`], [`Slot`]), [`VendorId`], [`DeviceId`] and
//! [`ClassCode`], each with a `FromStr`/`Display` round trip that never panics.

use core::fmt;
use core::str::FromStr;

/// Why an identifier did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// The input was empty.
    Empty,
    /// The input does not have the expected `DDDD:BB:DD.F` / `BB:DD.F` / `BB:DD` shape.
    Shape,
    /// A field holds a character that is not a hex digit; `pos` is its byte offset.
    NotHex {
        /// Byte offset of the offending character in the input.
        pos: usize,
    },
    /// A field has too many digits or its value is out of range (device > 0x1f, function > 7).
    Range {
        /// Byte offset of the field in the input.
        pos: usize,
    },
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Empty => f.write_str("empty identifier"),
            IdError::Shape => f.write_str(
                "expected a PCI address like 0000:0b:00.0 or 0b:00.0 (or a slot 0b:00), or a 4-digit hex id",
            ),
            IdError::NotHex { pos } => write!(f, "not a hex digit at byte {pos}"),
            IdError::Range { pos } => write!(f, "field at byte {pos} is out of range"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for IdError {}

/// Parse a hex field of at most `max_digits` digits starting at byte `pos` of the whole input.
fn hex_field(s: &str, pos: usize, max_digits: usize, max: u32) -> Result<u32, IdError> {
    if s.is_empty() {
        return Err(IdError::Shape);
    }
    if s.len() > max_digits {
        return Err(IdError::Range { pos });
    }
    let mut v: u32 = 0;
    for (i, c) in s.bytes().enumerate() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(IdError::NotHex { pos: pos + i }),
        };
        v = (v << 4) | u32::from(d);
    }
    if v > max {
        return Err(IdError::Range { pos });
    }
    Ok(v)
}

/// A PCI slot: domain, bus and device, naming all functions of one device (`0000:0b:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// PCI domain (segment).
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number, 0..=31.
    pub device: u8,
}

/// A PCI function address: domain, bus, device, function (`0000:0b:00.0`).
///
/// Parses with or without the domain; always displays with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// PCI domain (segment).
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

impl Bdf {
    /// Build an address, or `None` when device > 31 or function > 7.
    pub const fn new(domain: u16, bus: u8, device: u8, function: u8) -> Option<Bdf> {
        if device > 0x1f || function > 7 {
            None
        } else {
            Some(Bdf {
                domain,
                bus,
                device,
                function,
            })
        }
    }

    /// The slot (all functions) this function belongs to.
    pub const fn slot(&self) -> Slot {
        Slot {
            domain: self.domain,
            bus: self.bus,
            device: self.device,
        }
    }

    /// The same slot, another function (`None` when `function` > 7).
    pub const fn with_function(&self, function: u8) -> Option<Bdf> {
        Bdf::new(self.domain, self.bus, self.device, function)
    }

    /// Routing ID as used by PCIe: bus << 8 | device << 3 | function.
    pub const fn routing_id(&self) -> u16 {
        ((self.bus as u16) << 8) | ((self.device as u16) << 3) | self.function as u16
    }
}

impl Slot {
    /// Function `function` of this slot (`None` when `function` > 7).
    pub const fn function(&self, function: u8) -> Option<Bdf> {
        Bdf::new(self.domain, self.bus, self.device, function)
    }

    /// Whether `bdf` is one of this slot's functions.
    pub fn contains(&self, bdf: &Bdf) -> bool {
        bdf.slot() == *self
    }
}

/// Split `[DDDD:]BB:DD` at its colons; returns (domain, bus, device) and the offset of the device field.
fn parse_slot_part(s: &str) -> Result<(u16, u8, u8), IdError> {
    let mut parts = [("", 0usize); 3];
    let mut n = 0;
    let mut start = 0;
    for (i, c) in s.bytes().enumerate() {
        if c == b':' {
            if n >= 2 {
                return Err(IdError::Shape);
            }
            parts[n] = (&s[start..i], start);
            n += 1;
            start = i + 1;
        }
    }
    if n >= 3 {
        return Err(IdError::Shape);
    }
    parts[n] = (&s[start..], start);
    n += 1;
    let (domain, bus, dev) = match n {
        2 => (None, parts[0], parts[1]),
        3 => (Some(parts[0]), parts[1], parts[2]),
        _ => return Err(IdError::Shape),
    };
    let domain = match domain {
        Some((d, pos)) => hex_field(d, pos, 4, 0xffff)? as u16,
        None => 0,
    };
    let bus = hex_field(bus.0, bus.1, 2, 0xff)? as u8;
    let device = hex_field(dev.0, dev.1, 2, 0x1f)? as u8;
    Ok((domain, bus, device))
}

impl FromStr for Slot {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Slot, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.contains('.') {
            return Err(IdError::Shape);
        }
        let (domain, bus, device) = parse_slot_part(s)?;
        Ok(Slot {
            domain,
            bus,
            device,
        })
    }
}

impl FromStr for Bdf {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Bdf, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let dot = s.rfind('.').ok_or(IdError::Shape)?;
        let (domain, bus, device) = parse_slot_part(&s[..dot])?;
        let function = hex_field(&s[dot + 1..], dot + 1, 1, 7)? as u8;
        Ok(Bdf {
            domain,
            bus,
            device,
            function,
        })
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}",
            self.domain, self.bus, self.device
        )
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

macro_rules! id16 {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u16);

        impl FromStr for $name {
            type Err = IdError;
            /// Accepts `1002`, `0x1002` or `0X1002` (one to four hex digits).
            fn from_str(s: &str) -> Result<$name, IdError> {
                if s.is_empty() {
                    return Err(IdError::Empty);
                }
                let (digits, pos) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some(rest) => (rest, 2),
                    None => (s, 0),
                };
                Ok($name(hex_field(digits, pos, 4, 0xffff)? as u16))
            }
        }

        impl fmt::Display for $name {
            /// Four lowercase hex digits, no `0x` (as lspci and pci.ids write ids).
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:04x}", self.0)
            }
        }

        impl From<u16> for $name {
            fn from(v: u16) -> $name {
                $name(v)
            }
        }

        impl From<$name> for u16 {
            fn from(v: $name) -> u16 {
                v.0
            }
        }
    };
}

id16!(
    /// A PCI vendor ID (`1002` is AMD/ATI, `10de` NVIDIA, `8086` Intel).
    VendorId
);
id16!(
    /// A PCI device ID, meaningful together with its [`VendorId`].
    DeviceId
);

impl VendorId {
    /// AMD/ATI graphics.
    pub const AMD_ATI: VendorId = VendorId(0x1002);
    /// AMD (CPUs, chipsets).
    pub const AMD: VendorId = VendorId(0x1022);
    /// NVIDIA.
    pub const NVIDIA: VendorId = VendorId(0x10de);
    /// Intel.
    pub const INTEL: VendorId = VendorId(0x8086);
    /// What a config read returns for an absent device (all ones).
    pub const INVALID: VendorId = VendorId(0xffff);
}

/// A 24-bit class code: base class, subclass and programming interface (`030000` is a VGA controller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassCode {
    /// Base class (`0x03` display, `0x04` multimedia, `0x06` bridge, ...).
    pub class: u8,
    /// Subclass within the base class.
    pub subclass: u8,
    /// Programming interface.
    pub prog_if: u8,
}

impl ClassCode {
    /// Build from the 24-bit value as sysfs `class` shows it (`0x030000`); upper bits ignored.
    pub const fn from_u32(v: u32) -> ClassCode {
        ClassCode {
            class: (v >> 16) as u8,
            subclass: (v >> 8) as u8,
            prog_if: v as u8,
        }
    }

    /// The 24-bit value.
    pub const fn to_u32(&self) -> u32 {
        ((self.class as u32) << 16) | ((self.subclass as u32) << 8) | self.prog_if as u32
    }

    /// Display controller (base class 0x03: VGA, XGA, 3D, other).
    pub const fn is_display(&self) -> bool {
        self.class == 0x03
    }

    /// VGA-compatible controller (0x0300).
    pub const fn is_vga(&self) -> bool {
        self.class == 0x03 && self.subclass == 0x00
    }

    /// PCI-to-PCI bridge (0x0604) or PCI-to-PCI subtractive (0x0609).
    pub const fn is_pci_bridge(&self) -> bool {
        self.class == 0x06 && (self.subclass == 0x04 || self.subclass == 0x09)
    }

    /// Multimedia audio / HD audio device (0x0401 or 0x0403).
    pub const fn is_audio(&self) -> bool {
        self.class == 0x04 && (self.subclass == 0x01 || self.subclass == 0x03)
    }
}

impl FromStr for ClassCode {
    type Err = IdError;
    /// Accepts six hex digits with or without `0x` (`030000`, `0x030000` as in sysfs).
    fn from_str(s: &str) -> Result<ClassCode, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let (digits, pos) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(rest) => (rest, 2),
            None => (s, 0),
        };
        if digits.len() != 6 {
            return Err(IdError::Shape);
        }
        Ok(ClassCode::from_u32(hex_field(digits, pos, 6, 0xff_ffff)?))
    }
}

impl fmt::Display for ClassCode {
    /// Six lowercase hex digits (`030000`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06x}", self.to_u32())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn bdf_domain_optional_display_canonical() {
        let a: Bdf = "0b:00.0".parse().unwrap();
        let b: Bdf = "0000:0b:00.0".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "0000:0b:00.0");
        let c: Bdf = "abcd:FF:1f.7".parse().unwrap();
        assert_eq!(c.to_string(), "abcd:ff:1f.7");
    }

    #[test]
    fn bdf_errors_name_the_position() {
        assert_eq!("".parse::<Bdf>(), Err(IdError::Empty));
        assert_eq!("0b:00".parse::<Bdf>(), Err(IdError::Shape));
        assert_eq!("0b:20.0".parse::<Bdf>(), Err(IdError::Range { pos: 3 }));
        assert_eq!("0b:00.8".parse::<Bdf>(), Err(IdError::Range { pos: 6 }));
        assert_eq!("0g:00.0".parse::<Bdf>(), Err(IdError::NotHex { pos: 1 }));
        assert_eq!("1:2:3:4.0".parse::<Bdf>(), Err(IdError::Shape));
        assert_eq!(
            "00000:0b:00.0".parse::<Bdf>(),
            Err(IdError::Range { pos: 0 })
        );
        assert_eq!("0b:.0".parse::<Bdf>(), Err(IdError::Shape));
    }

    #[test]
    fn slot_parses_without_function() {
        let s: Slot = "0b:00".parse().unwrap();
        assert_eq!(s.to_string(), "0000:0b:00");
        assert!(s.contains(&"0b:00.1".parse().unwrap()));
        assert!("0b:00.0".parse::<Slot>().is_err());
    }

    #[test]
    fn ids_and_class() {
        assert_eq!("1002".parse::<VendorId>().unwrap(), VendorId::AMD_ATI);
        assert_eq!("0x10de".parse::<VendorId>().unwrap(), VendorId::NVIDIA);
        assert_eq!(DeviceId(0x7300).to_string(), "7300");
        assert!("12345".parse::<DeviceId>().is_err());
        let c: ClassCode = "0x030000".parse().unwrap();
        assert!(c.is_vga() && c.is_display());
        assert_eq!(c.to_string(), "030000");
        assert!("0300".parse::<ClassCode>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn bdf_round_trip(d in 0u16.., b in 0u8.., dev in 0u8..32, f in 0u8..8) {
            let bdf = Bdf::new(d, b, dev, f).unwrap();
            let s = bdf.to_string();
            proptest::prop_assert_eq!(s.parse::<Bdf>().unwrap(), bdf);
            proptest::prop_assert_eq!(bdf.slot().to_string().parse::<Slot>().unwrap(), bdf.slot());
        }

        #[test]
        fn id_round_trip(v in 0u16.., c in 0u32..0x100_0000) {
            proptest::prop_assert_eq!(VendorId(v).to_string().parse::<VendorId>().unwrap(), VendorId(v));
            proptest::prop_assert_eq!(DeviceId(v).to_string().parse::<DeviceId>().unwrap(), DeviceId(v));
            let cc = ClassCode::from_u32(c);
            proptest::prop_assert_eq!(cc.to_string().parse::<ClassCode>().unwrap(), cc);
        }

        #[test]
        fn any_string_parses_without_panic(s in ".{0,24}") {
            let _ = s.parse::<Bdf>();
            let _ = s.parse::<Slot>();
            let _ = s.parse::<VendorId>();
            let _ = s.parse::<ClassCode>();
        }
    }
}
