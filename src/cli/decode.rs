//! `passthru decode FILE`: decode a raw config space (sysfs `config`, 64/256/4096
//! bytes) or an `lspci -x/-xxx/-xxxx` text dump of one or more devices.
//!
//! Format detection: printable ASCII text is a dump when its first non-blank line
//! starts with a PCI address or its length is not 64, 256 or 4096; anything else
//! is a raw config space, whose length must be 64, 256 or 4096. Malformed input is
//! an error naming the file and the byte offset (exit status 2).
//!
//! JSON: `{"devices":[...]}`, one object per device with issue 2's keys verbatim
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
use passthru_pci_ids::caps::{Decoded, FieldValue, WalkError};
use passthru_pci_ids::config::{Bar, HeaderType};
use passthru_pci_ids::db::{Database, PciIdsIndex, DEFAULT_PATHS, ENV_VAR};
use passthru_pci_ids::dump::Dump;
use passthru_pci_ids::{Bdf, ConfigSpace};
use serde_json::{json, Map, Value};
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
    let decoded: Vec<Value> = devices
        .iter()
        .map(|(bdf, cfg)| device_json(*bdf, cfg, index.as_ref()))
        .collect();
    if g.json {
        let out = json!({ "devices": decoded });
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

/// Split the input into (address, config bytes) pairs.
fn read_devices(path: &Path, bytes: &[u8]) -> anyhow::Result<Vec<(Bdf, Vec<u8>)>> {
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
        let bdf = Bdf::new(0, 0, 0, 0).expect("0000:00:00.0 is a valid address");
        return Ok(vec![(bdf, bytes.to_vec())]);
    };
    let mut out = Vec::new();
    for d in Dump::new(text) {
        let d = d.map_err(|e| anyhow!("{}: {e}", path.display()))?;
        out.push((d.bdf, d.bytes().to_vec()));
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

fn hex16(v: u16) -> String {
    format!("{v:04x}")
}

fn fields_json(d: &Decoded) -> Value {
    let mut m = Map::new();
    d.fields(&mut |name, v| {
        let v = match v {
            FieldValue::Bool(b) => json!(b),
            FieldValue::Int(i) => json!(i),
            FieldValue::Str(s) => json!(s),
        };
        m.insert(name.to_string(), v);
    });
    Value::Object(m)
}

fn walk_error_json(e: &WalkError) -> Value {
    json!({ "offset": e.offset(), "message": e.to_string() })
}

fn bar_json(index: usize, bar: &Bar) -> Value {
    let (kind, address, prefetchable) = match *bar {
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
    json!({ "index": index, "kind": kind, "address": address, "prefetchable": prefetchable })
}

/// The JSON object for one device (issue 2's keys verbatim, plus more).
fn device_json(bdf: Bdf, bytes: &[u8], idx: Option<&PciIdsIndex<'_>>) -> Value {
    let c = ConfigSpace::new_unchecked(bytes);
    let (v, d, cc) = (c.vendor_id(), c.device_id(), c.class_code());
    let subsystem = c.subsystem();
    let mut caps = Vec::new();
    let mut walk_errors = Vec::new();
    if c.has_capability_area() {
        for cap in c.capabilities() {
            match cap {
                Ok(cap) => {
                    let mut o = json!({
                        "id": u8::from(cap.id),
                        "offset": cap.offset,
                        "name": cap.id.name(),
                    });
                    match cap.decode(bytes) {
                        Some(Ok(dec)) => o["fields"] = fields_json(&dec),
                        Some(Err(e)) => o["error"] = json!(e.to_string()),
                        None => {}
                    }
                    caps.push(o);
                }
                Err(e) => walk_errors.push(walk_error_json(&e)),
            }
        }
    }
    let mut ext = Vec::new();
    for cap in c.extended_capabilities() {
        match cap {
            Ok(cap) => {
                let mut o = json!({
                    "id": u16::from(cap.id),
                    "offset": cap.offset,
                    "version": cap.version,
                    "name": cap.id.name(),
                });
                match cap.decode(bytes) {
                    Some(Ok(dec)) => o["fields"] = fields_json(&dec),
                    Some(Err(e)) => o["error"] = json!(e.to_string()),
                    None => {}
                }
                ext.push(o);
            }
            Err(e) => walk_errors.push(walk_error_json(&e)),
        }
    }
    let bridge = c.bus_numbers().map(|b| {
        let bc = c.bridge_control().map_or(0, |x| x.bits());
        json!({
            "primary": b.primary,
            "secondary": b.secondary,
            "subordinate": b.subordinate,
            "control": bc,
            "secondary_bus_reset": bc & (1 << 6) != 0,
        })
    });
    let acs = c
        .acs()
        .map(|a| json!({ "capability": a.capability.bits(), "control": a.control.bits() }));
    let names = idx.map(|ix| {
        json!({
            "vendor_name": ix.vendor(v),
            "device_name": ix.device(v, d),
            "class_name": ix.class(cc.class),
            "subclass_name": ix.subclass(cc.class, cc.subclass),
            "prog_if_name": ix.prog_if(cc.class, cc.subclass, cc.prog_if),
            "subsystem_name": subsystem.and_then(|(sv, sd)| ix.subsystem(v, d, sv, sd)),
            "subsystem_vendor_name": subsystem.and_then(|(sv, _)| ix.vendor(sv)),
        })
    });
    let mut out = json!({
        "bdf": bdf.to_string(),
        "present": c.present(),
        "vendor_id": hex16(v.0),
        "device_id": hex16(d.0),
        "class": cc.to_string(),
        "header_type": u8::from(c.header_type()),
        "multifunction": c.multifunction(),
        "revision": c.revision(),
        "config_len": bytes.len(),
        "subsystem_vendor_id": subsystem.map(|x| hex16(x.0 .0)),
        "subsystem_id": subsystem.map(|x| hex16(x.1 .0)),
        "command": c.command().bits(),
        "status": c.status().bits(),
        "interrupt_pin": u8::from(c.interrupt_pin()),
        "bars": c.bars().map(|(i, b)| bar_json(i, &b)).collect::<Vec<_>>(),
        "bridge": bridge,
        "capabilities": caps,
        "extended_capabilities": ext,
        "capability_errors": walk_errors,
        "capabilities_readable": c.has_capability_area(),
        "extended_config": c.has_extended_config(),
        "pcie_port_type": c.pcie_port_type().map(|p| p.name()),
        "flr": c.flr(),
        "af_flr": c.af_flr(),
        "pm_no_soft_reset": c.pm_no_soft_reset(),
        "acs": acs,
    });
    if let (Some(Value::Object(n)), Value::Object(o)) = (names, &mut out) {
        o.extend(n);
    }
    out
}

fn yn(v: &Value) -> &'static str {
    match v.as_bool() {
        Some(true) => "yes",
        Some(false) => "no",
        None => "n/a",
    }
}

fn field_text(v: &Value) -> String {
    match v {
        Value::Bool(true) => "+".into(),
        Value::Bool(false) => "-".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fields_text(s: &mut String, o: &Value) {
    if let Some(Value::Object(m)) = o.get("fields") {
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
    if let Some(e) = o.get("error").and_then(Value::as_str) {
        let _ = writeln!(s, "\t\terror: {e}");
    }
}

/// Human report for one device, from its JSON (so both outputs say the same).
fn human(s: &mut String, d: &Value) {
    let st = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
    let name = match (
        d.get("vendor_name").and_then(Value::as_str),
        d.get("device_name").and_then(Value::as_str),
    ) {
        (Some(v), Some(n)) => format!(" {v} {n}"),
        (Some(v), None) => format!(" {v} Device {}", st("device_id")),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "{} [{}:{}]{name}",
        st("bdf"),
        st("vendor_id"),
        st("device_id")
    );
    let class_name = d
        .get("subclass_name")
        .and_then(Value::as_str)
        .or_else(|| d.get("class_name").and_then(Value::as_str))
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let ht = d.get("header_type").and_then(Value::as_u64).unwrap_or(0);
    let ht_name = match HeaderType::from(ht as u8) {
        HeaderType::Normal => "endpoint",
        HeaderType::Bridge => "PCI-to-PCI bridge",
        HeaderType::CardBus => "CardBus bridge",
        _ => "unknown",
    };
    let _ = writeln!(
        s,
        "\tClass {}{class_name}, header type {ht} ({ht_name}){}, rev {:02x}, {} bytes",
        st("class"),
        if d["multifunction"] == json!(true) {
            ", multifunction"
        } else {
            ""
        },
        d["revision"].as_u64().unwrap_or(0),
        d["config_len"]
    );
    if let (Some(sv), Some(sd)) = (
        d["subsystem_vendor_id"].as_str(),
        d["subsystem_id"].as_str(),
    ) {
        let n = d
            .get("subsystem_name")
            .and_then(Value::as_str)
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        let _ = writeln!(s, "\tSubsystem [{sv}:{sd}]{n}");
    }
    if let Some(bars) = d["bars"].as_array() {
        for b in bars {
            let kind = b["kind"].as_str().unwrap_or("");
            let addr = b["address"].as_u64().unwrap_or(0);
            if addr == 0 && kind == "memory32" {
                continue;
            }
            let _ = writeln!(
                s,
                "\tBAR{} {kind}{} at {addr:#x}",
                b["index"],
                if b["prefetchable"] == json!(true) {
                    " prefetchable"
                } else {
                    ""
                },
            );
        }
    }
    if let Some(b) = d.get("bridge").filter(|b| !b.is_null()) {
        let _ = writeln!(
            s,
            "\tBus: primary={:02x} secondary={:02x} subordinate={:02x}, {} {}",
            b["primary"].as_u64().unwrap_or(0),
            b["secondary"].as_u64().unwrap_or(0),
            b["subordinate"].as_u64().unwrap_or(0),
            if ht == 2 {
                "CardBus reset"
            } else {
                "secondary bus reset"
            },
            if b["secondary_bus_reset"] == json!(true) {
                "asserted"
            } else {
                "clear"
            },
        );
    }
    let pm = match d["pm_no_soft_reset"].as_bool() {
        None => "no PM capability".to_string(),
        Some(true) => "NoSoftRst+ (no PM reset)".to_string(),
        Some(false) => "NoSoftRst- (PM reset possible)".to_string(),
    };
    let _ = writeln!(
        s,
        "\tReset: FLR {}, AF FLR {}, {pm}",
        yn(&d["flr"]),
        yn(&d["af_flr"])
    );
    if let Some(p) = d["pcie_port_type"].as_str() {
        let _ = writeln!(s, "\tPCIe port type: {p}");
    }
    if d["capabilities_readable"] == json!(false) {
        let _ = writeln!(s, "\tCapabilities: <not in a 64-byte config space>");
    }
    for c in d["capabilities"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "\tCapabilities: [{:02x}] {} (id {:#04x})",
            c["offset"].as_u64().unwrap_or(0),
            c["name"].as_str().unwrap_or(""),
            c["id"].as_u64().unwrap_or(0)
        );
        fields_text(s, c);
    }
    for c in d["extended_capabilities"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "\tCapabilities: [{:03x} v{}] {} (id {:#06x})",
            c["offset"].as_u64().unwrap_or(0),
            c["version"],
            c["name"].as_str().unwrap_or(""),
            c["id"].as_u64().unwrap_or(0)
        );
        fields_text(s, c);
    }
    for e in d["capability_errors"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "\tCapability walk stopped: {}",
            e["message"].as_str().unwrap_or("")
        );
    }
}
