//! `passthru decode FILE`: decode a raw config space (sysfs `config`, 64/256/4096
//! bytes) or an `lspci -x/-xxx/-xxxx` text dump of one or more devices.
//!
//! Format detection: printable ASCII text is a dump when its first non-blank line
//! starts with a PCI address or its length is not 64, 256 or 4096; anything else
//! is a raw config space, whose length must be 64, 256 or 4096. Malformed input is
//! an error naming the file and the byte offset (exit status 2).
//!
//! JSON: `{"devices":[...]}`, one object per device with the documented keys verbatim
//! (`bdf`, `vendor_id`, `device_id`, `class` as lowercase hex strings, `header_type`,
//! `capabilities` [`id`, `offset`, `name`] in walk order, `extended_capabilities`
//! [`id`, `offset`, `version`, `name`], `flr`, `af_flr`, `pm_no_soft_reset`) plus
//! `fields` per decoded capability, `capability_errors` (where a walk stopped),
//! `present`, `multifunction`, `revision`, `config_len`, subsystem ids, `command`,
//! `status`, `bars`, `bridge` (type 1 and CardBus bridges: bus numbers, Bridge
//! Control and its bit 6, `secondary_bus_reset`), `extended_config` (whether the
//! function has an extended space to walk: 4096 bytes, PCIe or PCI-X, not an alias
//! of its first 256 bytes), `pcie_port_type`, `acs`, and names from pci.ids
//! (`vendor_name`, `device_name`, `class_name`, ...) when a database is found.

use super::Global;
use anyhow::{anyhow, Context};
use clap::Args;
use passthru::decode::{Capability, DecodedDevice, ExtCapability, Field};
use passthru_pci_ids::config::HeaderType;
use passthru_pci_ids::db::{Database, DEFAULT_PATHS, ENV_VAR};
use passthru_pci_ids::dump::Dump;
use passthru_pci_ids::{Bdf, ConfigSpace};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `passthru decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Raw config space (as sysfs `config`) or an lspci -x/-xxx/-xxxx dump.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// pci.ids database for names (default: $PASSTHRU_PCI_IDS, then the usual paths under --root).
    #[arg(long, value_name = "PATH")]
    pub pci_ids: Option<PathBuf>,
}

/// Run `passthru decode`.
pub fn run(g: &Global, a: &DecodeArgs) -> anyhow::Result<ExitCode> {
    let path = &a.file;
    let bytes = read_bounded(path)?;
    let devices = read_devices(path, &bytes)?;
    let db = load_names(g, a.pci_ids.as_deref())?;
    let index = match &db {
        Some(db) => Some(db.index()?),
        None => None,
    };
    let decoded: Vec<DecodedDevice> = devices
        .iter()
        .map(|(bdf, cfg)| DecodedDevice::new(*bdf, cfg, index.as_ref()))
        .collect();
    if g.json {
        // Through a Value: keys in name order, as decode has always printed them.
        let out = serde_json::to_value(passthru::report::DecodeReport::new(decoded))?;
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
    } else {
        let mut s = String::new();
        for (i, d) in decoded.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            human(&mut s, d);
        }
        out!("{s}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Most bytes `decode` reads: a 4096-byte device is about 16 KB of dump text, so this
/// allows thousands of devices while `/dev/zero` or a FIFO is an error, not a hang.
const MAX_INPUT: u64 = 64 << 20;

fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_INPUT {
        anyhow::bail!(
            "{}: larger than {MAX_INPUT} bytes (stopped at byte offset {MAX_INPUT}): not a config space or an lspci dump",
            path.display()
        );
    }
    Ok(bytes)
}

/// Split the input into (address, config bytes) pairs; a raw config space has no address.
fn read_devices(path: &Path, bytes: &[u8]) -> anyhow::Result<Vec<(Option<Bdf>, Vec<u8>)>> {
    // Text (printable ASCII) is a dump when it starts with an address, or when its
    // length cannot be a raw config space anyway; everything else is raw bytes.
    let text = std::str::from_utf8(bytes).ok().filter(|t| {
        let printable = !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
        let starts_with_address = t
            .lines()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.split_whitespace().next())
            .is_some_and(|w| w.parse::<Bdf>().is_ok());
        printable && (starts_with_address || !matches!(t.len(), 64 | 256 | 4096))
    });
    let Some(text) = text else {
        // raw binary config space
        ConfigSpace::new_checked(bytes).map_err(|e| {
            anyhow!(
                "{}: {e}; not an lspci dump either (file ends at byte offset {})",
                path.display(),
                bytes.len()
            )
        })?;
        return Ok(vec![(None, bytes.to_vec())]);
    };
    let mut out = Vec::new();
    for d in Dump::new(text) {
        let d = d.map_err(|e| anyhow!("{}: {e}", path.display()))?;
        out.push((Some(d.bdf), d.bytes().to_vec()));
    }
    if out.is_empty() {
        anyhow::bail!("{}: byte offset 0: no device in the dump", path.display());
    }
    Ok(out)
}

/// pci.ids: `--pci-ids`, else `$PASSTHRU_PCI_IDS`, else the usual paths under
/// `--root`. Missing database: names are left out (noted on stderr); an explicit
/// or environment path that cannot be read is an error.
fn load_names(g: &Global, explicit: Option<&Path>) -> anyhow::Result<Option<Database>> {
    if let Some(p) = explicit {
        return Ok(Some(Database::load(p)?));
    }
    if std::env::var_os(ENV_VAR).is_some_and(|v| !v.is_empty()) {
        return Ok(Some(Database::find(None)?));
    }
    for p in DEFAULT_PATHS {
        let candidate = g.root.join(p.trim_start_matches('/'));
        if candidate.is_file() {
            return Ok(Some(Database::load(candidate)?));
        }
    }
    eprintln!("passthru: note: no pci.ids found; names omitted (install the `pci.ids` package or set {ENV_VAR})");
    Ok(None)
}

fn yn(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

fn field_text(v: &Field) -> String {
    match v {
        Field::Bool(true) => "+".into(),
        Field::Bool(false) => "-".into(),
        Field::Int(n) => n.to_string(),
        Field::Str(s) => s.clone(),
    }
}

fn fields_text(s: &mut String, fields: Option<&BTreeMap<String, Field>>, error: Option<&str>) {
    if let Some(m) = fields {
        let mut line = String::from("\t\t");
        for (k, v) in m {
            let piece = format!("{k}={} ", field_text(v));
            if line.len() + piece.len() > 100 {
                let _ = writeln!(s, "{}", line.trim_end());
                line = String::from("\t\t");
            }
            line.push_str(&piece);
        }
        if !line.trim().is_empty() {
            let _ = writeln!(s, "{}", line.trim_end());
        }
    }
    if let Some(e) = error {
        let _ = writeln!(s, "\t\terror: {e}");
    }
}

/// Human report for one device, from the same value the JSON is (so both say the same).
fn human(s: &mut String, d: &DecodedDevice) {
    let names = &d.names;
    let name = match (&names.vendor_name, &names.device_name) {
        (Some(v), Some(n)) => format!(" {v} {n}"),
        (Some(v), None) => format!(" {v} Device {}", d.device_id),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "{} [{}:{}]{name}",
        d.bdf.as_deref().unwrap_or("(raw config space, no address)"),
        d.vendor_id,
        d.device_id
    );
    let class_name = names
        .subclass_name
        .as_ref()
        .or(names.class_name.as_ref())
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let ht = d.header_type;
    let ht_name = match HeaderType::from(ht) {
        HeaderType::Normal => "endpoint",
        HeaderType::Bridge => "PCI-to-PCI bridge",
        HeaderType::CardBus => "CardBus bridge",
        _ => "unknown",
    };
    let _ = writeln!(
        s,
        "\tClass {}{class_name}, header type {ht} ({ht_name}){}, rev {:02x}, {} bytes",
        d.class,
        if d.multifunction {
            ", multifunction"
        } else {
            ""
        },
        d.revision,
        d.config_len
    );
    if let (Some(sv), Some(sd)) = (&d.subsystem_vendor_id, &d.subsystem_id) {
        let n = names
            .subsystem_name
            .as_ref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        let _ = writeln!(s, "\tSubsystem [{sv}:{sd}]{n}");
    }
    for b in &d.bars {
        if b.address == 0 && b.kind == "memory32" {
            continue;
        }
        let _ = writeln!(
            s,
            "\tBAR{} {}{} at {:#x}",
            b.index,
            b.kind,
            if b.prefetchable { " prefetchable" } else { "" },
            b.address
        );
    }
    if let Some(b) = &d.bridge {
        let _ = writeln!(
            s,
            "\tBus: primary={:02x} secondary={:02x} subordinate={:02x}, {} {}",
            b.primary,
            b.secondary,
            b.subordinate,
            if ht == 2 {
                "CardBus reset"
            } else {
                "secondary bus reset"
            },
            if b.secondary_bus_reset {
                "asserted"
            } else {
                "clear"
            },
        );
    }
    if d.capabilities_readable {
        let pm = match d.pm_no_soft_reset {
            None => "no PM capability".to_string(),
            Some(true) => "NoSoftRst+ (no PM reset)".to_string(),
            Some(false) => "NoSoftRst- (PM reset possible)".to_string(),
        };
        let _ = writeln!(
            s,
            "\tReset: FLR {}, AF FLR {}, {pm}",
            yn(d.flr),
            yn(d.af_flr)
        );
    } else {
        let _ = writeln!(
            s,
            "\tReset: unknown (FLR, AF FLR and PM live in the capabilities, which a \
             {}-byte copy lacks: read the config file as root)",
            d.config_len
        );
    }
    if let Some(p) = &d.pcie_port_type {
        let _ = writeln!(s, "\tPCIe port type: {p}");
    }
    if !d.capabilities_readable {
        let _ = writeln!(s, "\tCapabilities: <not in a 64-byte config space>");
    }
    for c in &d.capabilities {
        let Capability {
            id,
            offset,
            name,
            contents,
            ..
        } = c;
        let _ = writeln!(s, "\tCapabilities: [{offset:02x}] {name} (id {id:#04x})");
        fields_text(s, contents.fields.as_ref(), contents.error.as_deref());
    }
    for c in &d.extended_capabilities {
        let ExtCapability {
            id,
            offset,
            version,
            name,
            contents,
            ..
        } = c;
        let _ = writeln!(
            s,
            "\tCapabilities: [{offset:03x} v{version}] {name} (id {id:#06x})"
        );
        fields_text(s, contents.fields.as_ref(), contents.error.as_deref());
    }
    for e in &d.capability_errors {
        let _ = writeln!(s, "\tCapability walk stopped: {}", e.message);
    }
}
