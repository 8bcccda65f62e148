//! The guest's report to the host over its own serial line: framed records.
//!
//! One record per line:
//!
//! ```text
//! @PTTRIAL 1 <len> <crc32> <json>
//! ```
//!
//! `1` is the protocol version, `<len>` the byte length of `<json>` in decimal,
//! `<crc32>` its CRC-32 (IEEE, as gzip uses) in 8 lowercase hex digits. The parser
//! looks for the prefix anywhere in a line (kernel messages and carriage returns
//! can share the port), takes exactly `<len>` bytes after the header, and keeps the
//! record only when length and checksum match and the JSON parses: a line cut short
//! by a killed guest or mangled by noise is counted as dropped, never misread.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The marker that starts every record.
pub const PREFIX: &str = "@PTTRIAL";
/// The protocol version this build writes and reads.
pub const VERSION: u32 = 1;

/// A BAR as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GuestBar {
    /// BAR index (0-5, 6 for the ROM).
    pub index: u8,
    /// Size in bytes.
    pub size: u64,
}

/// A kernel log line a driver wrote about its health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HealthLine {
    /// The driver (or module) the line is from.
    pub driver: String,
    /// `ok` (initialised), `fail` (an error) or `info`.
    pub kind: String,
    /// The message as the kernel printed it.
    pub message: String,
}

/// One thing the guest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record {
    /// The guest's init started.
    Hello {
        /// The guest kernel release.
        kernel: String,
    },
    /// A module load, in order.
    Module {
        /// The module name.
        name: String,
        /// The error, when loading failed.
        error: Option<String>,
    },
    /// A requested device, found in the guest.
    Device {
        /// Vendor id, 4 hex digits.
        vendor: String,
        /// Device id, 4 hex digits.
        device: String,
        /// Its guest address.
        guest_bdf: String,
        /// BARs the guest sized (non-zero only).
        bars: Vec<GuestBar>,
        /// Whether the first config dword read all ones.
        all_ones: bool,
        /// The driver bound, if any.
        driver: Option<String>,
    },
    /// A requested device the guest did not find before its wait ended.
    Missing {
        /// Vendor id, 4 hex digits.
        vendor: String,
        /// Device id, 4 hex digits.
        device: String,
    },
    /// A driver's health line from the kernel log.
    Health(HealthLine),
    /// The report is complete; the guest powers off next.
    Done,
}

/// The line for `r`, ending in `\n`.
pub fn encode(r: &Record) -> String {
    // Serialising these plain structs cannot fail.
    let json = serde_json::to_string(r).unwrap_or_else(|_| "{}".into());
    format!(
        "{PREFIX} {VERSION} {} {:08x} {json}\n",
        json.len(),
        crc32(json.as_bytes())
    )
}

/// CRC-32 (IEEE 802.3, the one gzip and PNG use).
pub fn crc32(b: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(b);
    c.sum()
}

/// What a stream held: the records in order, and how many framed lines were dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The valid records, in order.
    pub records: Vec<Record>,
    /// Lines with the prefix whose frame, checksum, version or JSON was bad.
    pub dropped: usize,
}

/// Parse everything read from the port (any bytes; not UTF-8 is tolerated).
pub fn parse(bytes: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    for line in bytes.split(|&b| b == b'\n') {
        let Some(at) = find(line, PREFIX.as_bytes()) else {
            continue;
        };
        match parse_frame(&line[at + PREFIX.len()..]) {
            Some(r) => out.records.push(r),
            None => out.dropped += 1,
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// ` <version> <len> <crc> <json>` after the prefix.
fn parse_frame(rest: &[u8]) -> Option<Record> {
    let mut i = 0;
    let mut field = || -> Option<&[u8]> {
        if rest.get(i) != Some(&b' ') {
            return None;
        }
        i += 1;
        let start = i;
        while i < rest.len() && rest[i] != b' ' {
            i += 1;
        }
        Some(&rest[start..i])
    };
    let version: u32 = std::str::from_utf8(field()?).ok()?.parse().ok()?;
    let len: usize = std::str::from_utf8(field()?).ok()?.parse().ok()?;
    let crc_field = field()?;
    if version != VERSION || crc_field.len() != 8 {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(crc_field).ok()?, 16).ok()?;
    if rest.get(i) != Some(&b' ') {
        return None;
    }
    let json = rest.get(i + 1..(i + 1).checked_add(len)?)?;
    if crc32(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn device() -> Record {
        Record::Device {
            vendor: "8086".into(),
            device: "10d3".into(),
            guest_bdf: "0000:01:00.0".into(),
            bars: vec![GuestBar {
                index: 0,
                size: 0x20000,
            }],
            all_ones: false,
            driver: Some("e1000e".into()),
        }
    }

    #[test]
    fn round_trip_with_kernel_noise_and_crlf() {
        let mut s = String::from("[    1.234] e1000e: Intel(R) PRO/1000\r\n");
        s.push_str(&encode(&Record::Hello {
            kernel: "6.12".into(),
        }));
        // A record behind noise on the same line, with the tty's \r\n.
        s.push_str("[    1.3] noise ");
        s.push_str(&encode(&device()).replace('\n', "\r\n"));
        s.push_str(&encode(&Record::Done));
        let p = parse(s.as_bytes());
        assert_eq!(p.dropped, 0);
        assert_eq!(
            p.records,
            vec![
                Record::Hello {
                    kernel: "6.12".into()
                },
                device(),
                Record::Done
            ]
        );
    }

    #[test]
    fn truncated_and_corrupted_lines_are_dropped() {
        let line = encode(&device());
        let cut = &line[..line.len() / 2];
        let mut flipped = line.clone().into_bytes();
        let n = flipped.len();
        flipped[n - 5] ^= 0x01;
        let mut s = Vec::new();
        s.extend_from_slice(cut.as_bytes());
        s.push(b'\n');
        s.extend_from_slice(&flipped);
        s.extend_from_slice(b"@PTTRIAL 2 2 00000000 {}\n@PTTRIAL x\n\xff\xfe garbage\n");
        // A length past the end of memory is no record (and no overflow).
        s.extend_from_slice(b"@PTTRIAL 1 18446744073709551615 00000000 {}\n");
        s.extend_from_slice(encode(&Record::Done).as_bytes());
        let p = parse(&s);
        assert_eq!(p.records, vec![Record::Done]);
        assert_eq!(p.dropped, 5);
    }

    #[test]
    fn frame_fields_are_what_the_doc_says() {
        let line = encode(&Record::Done);
        let json = r#"{"type":"done"}"#;
        assert_eq!(
            line,
            format!(
                "@PTTRIAL 1 {} {:08x} {json}\n",
                json.len(),
                crc32(json.as_bytes())
            )
        );
        // The CRC-32 check value every implementation agrees on (the "123456789" test vector).
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    proptest! {
        #[test]
        fn any_message_round_trips_among_noise(
            msg in ".{0,200}",
            noise in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let r = Record::Health(HealthLine { driver: "nvme".into(), kind: "fail".into(), message: msg });
            let mut s = noise.clone();
            s.push(b'\n');
            s.extend_from_slice(encode(&r).as_bytes());
            s.extend_from_slice(&noise);
            let p = parse(&s);
            prop_assert_eq!(p.records, vec![r]);
        }

        #[test]
        fn forged_headers_never_pass_or_panic(
            version in any::<u64>(),
            len in any::<u64>(),
            crc in any::<u32>(),
            body in ".{0,64}",
        ) {
            let line = format!("{PREFIX} {version} {len} {crc:08x} {body}\n");
            let p = parse(line.as_bytes());
            // Only a header that is right for its body makes a record.
            let right = version == u64::from(VERSION)
                && len == body.len() as u64
                && crc == crc32(body.as_bytes());
            prop_assert!(p.records.is_empty() || right);
            prop_assert_eq!(p.records.len() + p.dropped, 1);
        }

        #[test]
        fn any_cut_of_a_record_is_not_misread(cut in 0usize..200) {
            let line = encode(&device());
            // Keeping all but the newline would keep the whole record: cut into it.
            let cut = cut.min(line.len() - 2);
            let p = parse(&line.as_bytes()[..cut]);
            prop_assert!(p.records.is_empty());
        }
    }
}
