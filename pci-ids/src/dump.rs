//! Reader and writer of `lspci -x` / `-xxx` / `-xxxx` text dumps (what `lspci -F` reads).
//!
//! A device starts with a header line whose first word is its address
//! (`0b:00.0 VGA compatible controller: ...` or `0000:0b:00.0 ...`), followed by
//! data lines `OFF: xx xx ...` (OFF two or three hex digits, up to 16 bytes each).
//! A blank line ends a device. Lines that start with a tab or a space (the
//! decoration of `lspci -v`) are skipped. Everything else is an error naming its
//! byte offset and line in the text: a data line outside a device, a bad hex byte,
//! data past 4096 bytes, an offset given twice with different bytes, or a device
//! whose bytes do not cover a whole 64-, 256- or 4096-byte config space from 0
//! without gaps. An offset repeated with the same byte is accepted: pciutils'
//! own test dump `cap-dvsec` repeats its line `50:` verbatim, and lspci -F reads
//! it (lib/dump.c keeps the last value; a conflicting repeat stays an error here,
//! since which byte is true cannot be known).
//!
//! ```
//! use passthru_pci_ids::dump::Dump;
//! let mut text = String::from("0b:00.0 VGA compatible controller: Fiji\n");
//! for off in (0..64).step_by(16) {
//!     text.push_str(&format!("{off:02x}: 02 10 00 73 00 00 00 00 00 00 00 03 00 00 00 00\n"));
//! }
//! let dev = Dump::new(&text).next().unwrap().unwrap();
//! assert_eq!(dev.bdf.to_string(), "0000:0b:00.0");
//! assert_eq!(dev.config().unwrap().device_id().to_string(), "7300");
//! ```

use crate::config::{ConfigError, ConfigSpace, HEADER_LEN, PCIE_LEN, PCI_LEN};
use crate::ids::Bdf;
use core::fmt;

/// A malformed dump: where and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpError {
    /// Byte offset in the text (of the bad token when known, else of the line).
    pub offset: usize,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: DumpErrorKind,
}

/// What is wrong with a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DumpErrorKind {
    /// A line that is neither a device header, a data line, blank, nor indented.
    Syntax,
    /// A data line before any device header.
    DataOutsideDevice,
    /// Not a two-digit hex byte.
    BadByte,
    /// More than 16 bytes on one line.
    LineTooLong,
    /// Data beyond 4096 bytes.
    PastEnd {
        /// The config-space offset that does not fit.
        config_offset: usize,
    },
    /// A config-space offset given twice with different bytes.
    Duplicate {
        /// The offset.
        config_offset: usize,
    },
    /// The device's bytes do not cover 0..len for a len of 64, 256 or 4096.
    Incomplete {
        /// First config-space offset missing.
        missing: usize,
    },
    /// A device header with no data lines.
    NoData,
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DumpErrorKind::Syntax => write!(f, "unrecognised line")?,
            DumpErrorKind::DataOutsideDevice => write!(f, "data line before any device header")?,
            DumpErrorKind::BadByte => write!(f, "not a two-digit hex byte")?,
            DumpErrorKind::LineTooLong => write!(f, "more than 16 bytes on one line")?,
            DumpErrorKind::PastEnd { config_offset } => {
                write!(f, "config offset {config_offset:#x} is past 4096 bytes")?
            }
            DumpErrorKind::Duplicate { config_offset } => {
                write!(f, "config offset {config_offset:#x} given twice with different bytes")?
            }
            DumpErrorKind::Incomplete { missing } => write!(
                f,
                "device data stops or has a gap at config offset {missing:#x} (need 64, 256 or 4096 bytes)"
            )?,
            DumpErrorKind::NoData => write!(f, "device header without data lines")?,
        }
        write!(f, " at byte offset {} (line {})", self.offset, self.line)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DumpError {}

/// One device read from a dump.
#[derive(Clone)]
pub struct DumpDevice<'a> {
    /// Address from the header line (domain 0 when the dump omits it).
    pub bdf: Bdf,
    /// The rest of the header line (lspci's description), trimmed.
    pub description: &'a str,
    /// Byte offset of the header line in the text.
    pub offset: usize,
    data: [u8; PCIE_LEN],
    len: usize,
}

impl fmt::Debug for DumpDevice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DumpDevice")
            .field("bdf", &self.bdf)
            .field("description", &self.description)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

impl DumpDevice<'_> {
    /// The config-space bytes (64, 256 or 4096 of them).
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// A checked view of the bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Length`] when the dump holds other than 64, 256 or 4096 bytes.
    pub fn config(&self) -> Result<ConfigSpace<&[u8]>, ConfigError> {
        ConfigSpace::new_checked(self.bytes())
    }
}

/// Iterator over the devices of a dump; stops after the first error.
#[derive(Debug, Clone)]
pub struct Dump<'a> {
    rest: &'a str,
    offset: usize,
    line: usize,
    failed: bool,
}

impl<'a> Dump<'a> {
    /// Read devices from `text`.
    pub fn new(text: &'a str) -> Dump<'a> {
        Dump {
            rest: text,
            offset: 0,
            line: 0,
            failed: false,
        }
    }

    fn next_line(&mut self) -> Option<(&'a str, usize)> {
        if self.rest.is_empty() {
            return None;
        }
        let (l, rest, adv) = match self.rest.find('\n') {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..], i + 1),
            None => (self.rest, "", self.rest.len()),
        };
        let at = self.offset;
        self.rest = rest;
        self.offset += adv;
        self.line += 1;
        Some((l.strip_suffix('\r').unwrap_or(l), at))
    }

    fn peek_line(&self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        Some(match self.rest.find('\n') {
            Some(i) => &self.rest[..i],
            None => self.rest,
        })
    }

    fn err(
        &mut self,
        offset: usize,
        kind: DumpErrorKind,
    ) -> Option<Result<DumpDevice<'a>, DumpError>> {
        self.failed = true;
        Some(Err(DumpError {
            offset,
            line: self.line,
            kind,
        }))
    }
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `OFF:` prefix of a data line: (offset value, index after the colon).
fn data_prefix(l: &str) -> Option<(usize, usize)> {
    let b = l.as_bytes();
    let colon = b.iter().position(|&c| c == b':')?;
    if !(2..=3).contains(&colon) {
        return None;
    }
    let mut v = 0usize;
    for &c in &b[..colon] {
        v = (v << 4) | usize::from(hexval(c)?);
    }
    // a device header `0b:00.0` also starts with two hex digits and a colon:
    // data lines have a space (or end of line) right after the colon
    match b.get(colon + 1) {
        None | Some(b' ') => Some((v, colon + 1)),
        _ => None,
    }
}

fn header(l: &str) -> Option<(Bdf, &str)> {
    let word_end = l.find([' ', '\t']).unwrap_or(l.len());
    let bdf: Bdf = l[..word_end].parse().ok()?;
    Some((bdf, l[word_end..].trim()))
}

impl<'a> Iterator for Dump<'a> {
    type Item = Result<DumpDevice<'a>, DumpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        // find the next header
        let (bdf, description, start) = loop {
            let (l, at) = self.next_line()?;
            if l.trim().is_empty() || l.starts_with([' ', '\t']) {
                continue;
            }
            if data_prefix(l).is_some() {
                return self.err(at, DumpErrorKind::DataOutsideDevice);
            }
            match header(l) {
                Some((bdf, d)) => break (bdf, d, at),
                None => return self.err(at, DumpErrorKind::Syntax),
            }
        };
        let mut data = [0xffu8; PCIE_LEN];
        let mut seen = [0u64; PCIE_LEN / 64];
        let mut max_end = 0usize;
        let mut any = false;
        while let Some(peek) = self.peek_line() {
            let peek = peek.strip_suffix('\r').unwrap_or(peek);
            if peek.trim().is_empty() {
                self.next_line();
                break;
            }
            if peek.starts_with([' ', '\t']) {
                self.next_line();
                continue;
            }
            let Some((base, after)) = data_prefix(peek) else {
                // next device header (lspci -x output without blank lines) or garbage
                if header(peek).is_some() {
                    break;
                }
                let at = self.offset;
                self.next_line();
                return self.err(at, DumpErrorKind::Syntax);
            };
            let (l, at) = self.next_line()?;
            let mut i = after;
            let b = l.as_bytes();
            let mut n = 0usize;
            loop {
                while i < b.len() && b[i] == b' ' {
                    i += 1;
                }
                if i >= b.len() {
                    break;
                }
                let tok_end = b[i..]
                    .iter()
                    .position(|&c| c == b' ')
                    .map_or(b.len(), |p| i + p);
                let tok = &b[i..tok_end];
                let v = match tok {
                    [h, l] => match (hexval(*h), hexval(*l)) {
                        (Some(h), Some(l)) => (h << 4) | l,
                        _ => return self.err(at + i, DumpErrorKind::BadByte),
                    },
                    _ => return self.err(at + i, DumpErrorKind::BadByte),
                };
                if n >= 16 {
                    return self.err(at + i, DumpErrorKind::LineTooLong);
                }
                let off = base + n;
                if off >= PCIE_LEN {
                    return self.err(at + i, DumpErrorKind::PastEnd { config_offset: off });
                }
                let (w, bit) = (off / 64, off % 64);
                if seen[w] & (1 << bit) != 0 && data[off] != v {
                    return self.err(at + i, DumpErrorKind::Duplicate { config_offset: off });
                }
                seen[w] |= 1 << bit;
                data[off] = v;
                max_end = max_end.max(off + 1);
                any = true;
                n += 1;
                i = tok_end;
            }
        }
        if !any {
            return self.err(start, DumpErrorKind::NoData);
        }
        let len = if max_end <= HEADER_LEN {
            HEADER_LEN
        } else if max_end <= PCI_LEN {
            PCI_LEN
        } else {
            PCIE_LEN
        };
        for off in 0..len {
            if seen[off / 64] & (1 << (off % 64)) == 0 {
                return self.err(start, DumpErrorKind::Incomplete { missing: off });
            }
        }
        Some(Ok(DumpDevice {
            bdf,
            description,
            offset: start,
            data,
            len,
        }))
    }
}

/// Write one device in `lspci -x`/`-xxx`/`-xxxx` format (three-digit offsets past
/// 256 bytes), followed by a blank line. `description` follows the address on the
/// header line.
///
/// # Errors
///
/// The [`fmt::Error`] of `w`.
pub fn write_device(
    w: &mut dyn fmt::Write,
    bdf: &Bdf,
    description: &str,
    bytes: &[u8],
) -> fmt::Result {
    writeln!(w, "{bdf} {description}")?;
    for (i, chunk) in bytes.chunks(16).enumerate() {
        if bytes.len() > PCI_LEN {
            write!(w, "{:03x}:", i * 16)?;
        } else {
            write!(w, "{:02x}:", i * 16)?;
        }
        for b in chunk {
            write!(w, " {b:02x}")?;
        }
        writeln!(w)?;
    }
    writeln!(w)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::{String, ToString};

    static NVME: &[u8; 4096] = include_bytes!("../tests/data/tcg-amd/0000-0c-00.0.bin");
    static EDU: &[u8; 256] = include_bytes!("../tests/data/tcg-amd/0000-00-08.0.bin");

    #[test]
    fn write_then_read_round_trips_several_devices() {
        let mut s = String::new();
        let a: Bdf = "0000:0c:00.0".parse().unwrap();
        let b: Bdf = "00:08.0".parse().unwrap();
        write_device(
            &mut s,
            &a,
            "Non-Volatile memory controller: QEMU NVMe",
            NVME,
        )
        .unwrap();
        write_device(&mut s, &b, "Unclassified device", EDU).unwrap();
        write_device(&mut s, &b, "first 64 bytes", &EDU[..64]).unwrap();
        let devs: [DumpDevice<'_>; 3] = {
            let mut it = Dump::new(&s).map(|r| r.unwrap());
            [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
        };
        assert_eq!(devs[0].bdf, a);
        assert_eq!(devs[0].bytes(), &NVME[..]);
        assert_eq!(
            devs[0].description,
            "Non-Volatile memory controller: QEMU NVMe"
        );
        assert_eq!(devs[1].bytes(), &EDU[..]);
        assert_eq!(devs[2].bytes(), &EDU[..64]);
        assert_eq!(Dump::new(&s).count(), 3);
    }

    #[test]
    fn lspci_vx_decoration_is_skipped_and_headers_without_blank_lines_split() {
        let mut s =
            String::from("00:08.0 Unclassified device [00ff]: Device [1234:11e8] (rev 10)\n");
        s.push_str("\tSubsystem: Red Hat, Inc. Device [1af4:1100]\n");
        for off in (0..64).step_by(16) {
            s.push_str(&std::format!("{off:02x}:"));
            for b in &EDU[off..off + 16] {
                s.push_str(&std::format!(" {b:02x}"));
            }
            s.push('\n');
        }
        s.push_str("00:09.0 next\n00: ");
        s.push_str(&"00 ".repeat(16));
        s.push('\n');
        for off in (16..64).step_by(16) {
            s.push_str(&std::format!("{off:02x}: "));
            s.push_str(&"00 ".repeat(16));
            s.push('\n');
        }
        let mut it = Dump::new(&s);
        let d = it.next().unwrap().unwrap();
        assert_eq!(d.bytes(), &EDU[..64]);
        assert_eq!(d.bdf.to_string(), "0000:00:08.0");
        assert_eq!(it.next().unwrap().unwrap().bdf.to_string(), "0000:00:09.0");
        assert!(it.next().is_none());
    }

    #[test]
    fn crlf_line_endings_are_accepted() {
        let mut s = String::new();
        let b: Bdf = "00:08.0".parse().unwrap();
        write_device(&mut s, &b, "edu", &EDU[..]).unwrap();
        let crlf = s.replace('\n', "\r\n");
        let d = Dump::new(&crlf).next().unwrap().unwrap();
        assert_eq!(d.bytes(), &EDU[..]);
        assert_eq!(d.description, "edu");
    }

    #[test]
    fn a_line_repeated_verbatim_is_accepted() {
        // the first rows of pciutils' tests/cap-dvsec (Intel 0d93 at 4e:00.0), whose
        // "50:" row appears twice with the same bytes; lspci -F reads the file
        let rows = [
            "00: 86 80 93 0d 00 00 10 00 00 00 00 ff 00 00 80 00",
            "10: 00 00 10 b3 00 00 00 00 01 a4 00 00 00 00 00 00",
            "20: 08 00 00 b1 00 00 00 00 00 00 00 00 00 00 00 00",
            "30: 00 00 00 00 40 00 00 00 00 00 00 00 ff 01 00 00",
            "40: 10 80 92 00 e1 8f 00 10 10 21 00 00 00 00 00 00",
            "50: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            "50: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
        ];
        let mut s = std::string::String::from("4e:00.0 Unassigned class [ff00]: Intel 0d93\n");
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        for off in (0x60..0x100).step_by(16) {
            s.push_str(&std::format!(
                "{off:02x}: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n"
            ));
        }
        let d = Dump::new(&s).next().unwrap().unwrap();
        assert_eq!(d.bytes().len(), 256);
        assert_eq!(d.config().unwrap().device_id().0, 0x0d93);
        // the same row with one byte changed is a conflict
        let bad = s.replacen(
            rows[6],
            "50: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01",
            1,
        );
        let e = first_err(&bad);
        assert_eq!(
            e.kind,
            DumpErrorKind::Duplicate {
                config_offset: 0x5f
            }
        );
    }

    fn first_err(s: &str) -> DumpError {
        Dump::new(s).find_map(|r| r.err()).expect("an error")
    }

    #[test]
    fn malformed_dumps_name_the_byte_offset() {
        let e = first_err("00: 00 11\n");
        assert_eq!(
            (e.offset, e.line, e.kind),
            (0, 1, DumpErrorKind::DataOutsideDevice)
        );
        let e = first_err("0b:00.0 x\n00: 00 1g\n");
        assert_eq!((e.offset, e.line, e.kind), (17, 2, DumpErrorKind::BadByte));
        let e = first_err("0b:00.0 x\n00: 00 11\n");
        assert_eq!(e.kind, DumpErrorKind::Incomplete { missing: 2 });
        let e = first_err("0b:00.0 x\n\n");
        assert_eq!((e.offset, e.kind), (0, DumpErrorKind::NoData));
        let e = first_err("hello\n");
        assert_eq!(e.kind, DumpErrorKind::Syntax);
        let e = first_err("0b:00.0 x\nff8: 00 00 00 00 00 00 00 00 00\n");
        assert_eq!(
            e.kind,
            DumpErrorKind::PastEnd {
                config_offset: 0x1000
            }
        );
        let e = first_err("0b:00.0 x\n00: 00\n00: 01\n");
        assert_eq!(e.kind, DumpErrorKind::Duplicate { config_offset: 0 });
        let msg = std::format!("{e}");
        assert!(
            msg.contains("byte offset") && msg.contains("line 3"),
            "{msg}"
        );
    }
}
