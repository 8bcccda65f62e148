//! `passthru config --guest proxmox-mapping DEVICE...`: a Proxmox VE cluster-wide PCI
//! mapping over every node given (`--root` once per node snapshot, or `--roots-dir`).
//!
//! Each DEVICE argument is one mapping. On each node every slot the argument matches
//! becomes one `map` entry (Proxmox picks the first free one on guest start): the
//! whole slot (path without the function) when it has several functions, as
//! `config` always passes a slot whole. A slot that fails `check` is left out unless
//! `--force`, and the output names its failing findings; a node without the device
//! is reported, not an abort. Prints the `pci.cfg` entries, the `pvesh` command that
//! creates each mapping and guest lines using them; writes nothing.
//!
//! Exit status, as `check` over the same nodes: 0; 1 when a requested device fails
//! on a node (even when `--force` maps it); 2 when a node lacks the device or could
//! not be read, and on usage errors.

use super::config::ConfigArgs;
use super::fleet::{self, Node, NodeId, UsageError};
use super::Global;
use passthru::report::{ClusterMapping, MappingNode, MappingReport, MappingSlot, MappingStatus};
use passthru_config_gen::mapping::{self as pm, MapEntry, Mapping};
use passthru_config_gen::GuestKind;
use passthru_iommu_groups::{check_bdfs, DeviceSpec, Host, Severity, Verdict};
use passthru_pci_ids::{Bdf, Slot};
use std::collections::BTreeMap;
use std::process::ExitCode;

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// One node's part in one mapping.
enum Part {
    /// Slots of the device on this node, each with its entry and verdict.
    Found(Vec<SlotPart>),
    /// The node has no such device.
    Missing(String),
    /// The node could not be read, or its name is not a Proxmox node name.
    Error(String),
}

struct SlotPart {
    entry: MapEntry,
    functions: usize,
    verdict: Verdict,
    /// Finding codes: the failing ones when the slot fails, else every one.
    codes: Vec<&'static str>,
    /// Emitted into the mapping (passes, or `--force`).
    mapped: bool,
}

/// The slots `word` names on `host`, each with its functions, sorted.
fn slots_of(host: &Host, spec: &DeviceSpec) -> Result<Vec<(Slot, Vec<Bdf>)>, String> {
    let bdfs = host.resolve(spec).map_err(|e| e.to_string())?;
    let mut slots: Vec<Slot> = bdfs.iter().map(|b| b.slot()).collect();
    slots.sort();
    slots.dedup();
    Ok(slots
        .into_iter()
        .map(|s| {
            let fns = host
                .devices
                .keys()
                .filter(|b| b.slot() == s)
                .copied()
                .collect();
            (s, fns)
        })
        .collect())
}

fn node_part(n: &Node, spec: &DeviceSpec, force: bool) -> Part {
    let host = match &n.host {
        Ok(h) => h,
        Err(e) => return Part::Error(format!("{e:#}")),
    };
    let node = pm::node_name(&n.id.name);
    if !pm::is_node_name(node) {
        return Part::Error(format!(
            "{node:?} is not a Proxmox node name (letters, digits and inner '-')"
        ));
    }
    let slots = match slots_of(host, spec) {
        Ok(s) => s,
        Err(e) => return Part::Missing(e),
    };
    let mut parts = Vec::new();
    for (slot, fns) in slots {
        let Some(f0) = fns.first().and_then(|b| host.device(*b)) else {
            continue;
        };
        if f0.is_any_bridge() {
            return Part::Error(format!(
                "{} is a bridge (class {}): map the device behind it",
                f0.bdf, f0.class
            ));
        }
        let report = match check_bdfs(host, &fns) {
            Ok(r) => r,
            Err(e) => return Part::Error(e.to_string()),
        };
        let verdict = report.worst();
        let mut codes: Vec<&'static str> = Vec::new();
        let findings = report
            .host
            .findings
            .iter()
            .chain(report.devices.iter().flat_map(|d| d.findings.iter()));
        for f in findings {
            if (verdict != Verdict::Fail || f.severity == Severity::Fail)
                && !codes.contains(&f.code.name())
            {
                codes.push(f.code.name());
            }
        }
        let path = if fns.len() > 1 {
            slot.to_string()
        } else {
            f0.bdf.to_string()
        };
        let entry = MapEntry {
            node: node.to_string(),
            id: (f0.vendor, f0.device),
            subsystem: f0.subsystem_vendor.zip(f0.subsystem_device),
            iommu_group: f0.iommu_group.map(u32::from),
            path,
        };
        parts.push(SlotPart {
            entry,
            functions: fns.len(),
            verdict,
            codes,
            mapped: verdict != Verdict::Fail || force,
        });
    }
    Part::Found(parts)
}

impl Part {
    fn status(&self) -> u8 {
        match self {
            Part::Found(p) => u8::from(p.iter().any(|s| s.verdict == Verdict::Fail)),
            Part::Missing(_) | Part::Error(_) => 2,
        }
    }
}

/// Run `config --guest proxmox-mapping`.
pub fn run(g: &Global, a: &ConfigArgs) -> anyhow::Result<ExitCode> {
    if a.guest.iter().any(|k| *k != GuestKind::ProxmoxMapping) {
        return Err(usage(
            "--guest proxmox-mapping describes the cluster, not one host: give it alone \
             (run `passthru config DEVICE` on each node for its own configuration)",
        ));
    }
    if a.apply || a.rollback || a.run_commands || !a.remove.is_empty() {
        return Err(usage(
            "--guest proxmox-mapping only prints: --apply, --rollback, --run-commands and \
             --remove do not go with it (create the mapping with the pvesh command it prints)",
        ));
    }
    let host_only = [
        (a.x_vga, "--x-vga"),
        (a.no_iommu_pt, "--no-iommu-pt"),
        (a.early_ids, "--early-ids"),
        (a.blacklist, "--blacklist"),
        (a.acs_override.is_some(), "--acs-override"),
        (!a.remove_param.is_empty(), "--remove-param"),
        (a.bootloader.is_some(), "--bootloader"),
        (a.initramfs.is_some(), "--initramfs"),
    ];
    if let Some((_, flag)) = host_only.iter().find(|(set, _)| *set) {
        return Err(usage(format!(
            "{flag} configures one host and does not go with --guest proxmox-mapping \
             (run `passthru config DEVICE {flag} ...` on that node)"
        )));
    }
    if a.devices.is_empty() {
        return Err(usage(
            "name the device to map, e.g. `passthru --root node1 --root node2 config --guest proxmox-mapping 10de:2204`",
        ));
    }
    let mut specs = Vec::new();
    for d in &a.devices {
        if d.contains(',') {
            return Err(usage(format!(
                "{d}: with --guest proxmox-mapping each DEVICE argument is one mapping; give them as separate arguments"
            )));
        }
        specs.push(d.parse::<DeviceSpec>()?);
    }
    if !a.mapping_id.is_empty() && a.mapping_id.len() != a.devices.len() {
        return Err(usage(format!(
            "--mapping-id given {} times for {} DEVICE arguments: give one per DEVICE, in order",
            a.mapping_id.len(),
            a.devices.len()
        )));
    }
    if let Some(bad) = a.mapping_id.iter().find(|i| !pm::is_config_id(i)) {
        return Err(usage(format!(
            "--mapping-id {bad:?}: a Proxmox mapping id is a letter, then letters, digits, '-' or '_'"
        )));
    }
    let roots = fleet::roots(g)?;
    let mut done = fleet::over_nodes(&roots, |n| {
        specs
            .iter()
            .map(|spec| node_part(n, spec, a.force))
            .collect::<Vec<Part>>()
    })?;
    done.sort_by(|x, y| x.0.name.cmp(&y.0.name));
    let sorted: Vec<&NodeId> = done.iter().map(|(n, _)| n).collect();

    let mut mappings: Vec<(Mapping, Vec<(&NodeId, &Part)>)> = Vec::new();
    for (k, _) in specs.iter().enumerate() {
        let parts: Vec<(&NodeId, &Part)> = done.iter().map(|(n, p)| (n, &p[k])).collect();
        let id = match a.mapping_id.get(k) {
            Some(id) => id.clone(),
            None => {
                let first = parts.iter().find_map(|(_, p)| match p {
                    Part::Found(s) => s.first().map(|s| s.entry.id),
                    _ => None,
                });
                match first {
                    Some((v, d)) => pm::default_id(v, d),
                    None => format!("pci-{}", a.devices[k].replace([':', '.'], "-")),
                }
            }
        };
        if mappings.iter().any(|(m, _)| m.id == id) {
            return Err(usage(format!(
                "two DEVICE arguments give the mapping id {id}: name them with --mapping-id"
            )));
        }
        let entries = parts
            .iter()
            .flat_map(|(_, p)| match p {
                Part::Found(s) => s
                    .iter()
                    .filter(|s| s.mapped)
                    .map(|s| s.entry.clone())
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        mappings.push((Mapping { id, entries }, parts));
    }
    let worst = mappings
        .iter()
        .flat_map(|(_, parts)| parts.iter().map(|(_, p)| p.status()))
        .max()
        .unwrap_or(0);
    let plain: Vec<Mapping> = mappings.iter().map(|(m, _)| m.clone()).collect();
    let pci_cfg = pm::pci_cfg(&plain);
    let used: Vec<String> = plain
        .iter()
        .filter(|m| !m.entries.is_empty())
        .map(|m| m.id.clone())
        .collect();
    let guest = (!used.is_empty()).then(|| pm::guest(&used));

    if g.json {
        let ms: Vec<ClusterMapping> = mappings
            .iter()
            .zip(&a.devices)
            .map(|((m, parts), dev)| {
                let mut nodes = BTreeMap::new();
                for (n, p) in parts {
                    let node = match p {
                        Part::Found(slots) => MappingNode::found(
                            slots
                                .iter()
                                .map(|s| {
                                    MappingSlot::new(
                                        s.entry.path.clone(),
                                        s.functions,
                                        s.verdict,
                                        s.codes.iter().map(|c| c.to_string()).collect(),
                                        s.mapped,
                                        s.entry.property_string(),
                                    )
                                })
                                .collect(),
                            n.source(),
                        ),
                        Part::Missing(msg) => {
                            MappingNode::without(MappingStatus::Missing, msg.clone(), n.source())
                        }
                        Part::Error(msg) => {
                            MappingNode::without(MappingStatus::Error, msg.clone(), n.source())
                        }
                    };
                    nodes.insert(n.name.clone(), node);
                }
                ClusterMapping::new(
                    m.id.clone(),
                    dev.clone(),
                    m.entries.iter().map(MapEntry::property_string).collect(),
                    (!m.entries.is_empty()).then(|| pm::pvesh(m)),
                    nodes,
                )
            })
            .collect();
        let report = MappingReport::new(ms, pci_cfg, guest);
        // Through a `Value`: keys in name order, as this output has always had them.
        let v = serde_json::to_value(&report)?;
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::from(worst));
    }

    let name_w = sorted
        .iter()
        .map(|n| n.name.chars().count() + usize::from(!n.from_host))
        .max()
        .unwrap_or(4);
    let mut s = String::new();
    for ((m, parts), dev) in mappings.iter().zip(&a.devices) {
        s.push_str(&format!(
            "Proxmox cluster mapping {} (DEVICE {dev})\n",
            m.id
        ));
        for (n, p) in parts {
            let shown = if n.from_host {
                n.name.clone()
            } else {
                format!("{}*", n.name)
            };
            let lead = format!("  {shown:<name_w$}  ");
            match p {
                Part::Missing(msg) => s.push_str(&format!("{lead}not mapped: {msg}\n")),
                Part::Error(msg) => s.push_str(&format!(
                    "{lead}not mapped: {}\n",
                    msg.lines().next().unwrap_or("")
                )),
                Part::Found(slots) => {
                    for (i, sp) in slots.iter().enumerate() {
                        let lead = if i == 0 {
                            lead.clone()
                        } else {
                            " ".repeat(lead.len())
                        };
                        let what = format!(
                            "{}{}, group {}",
                            sp.entry.path,
                            if sp.functions > 1 {
                                format!(" (whole slot, {} functions)", sp.functions)
                            } else {
                                String::new()
                            },
                            sp.entry
                                .iommu_group
                                .map_or("none".to_string(), |g| g.to_string())
                        );
                        let codes = sp.codes.join(", ");
                        let line = match (sp.verdict, sp.mapped) {
                            (Verdict::Fail, true) => format!(
                                "mapped although it fails check (--force): {what}; fails: {codes}"
                            ),
                            (Verdict::Fail, false) => format!(
                                "not mapped: {what} fails check: {codes} (--force maps it anyway)"
                            ),
                            (Verdict::Warn, _) => format!("mapped: {what}; warnings: {codes}"),
                            (Verdict::Pass, _) => format!("mapped: {what}; passes check"),
                        };
                        s.push_str(&format!("{lead}{line}\n"));
                    }
                }
            }
        }
        s.push('\n');
    }
    if sorted.iter().any(|n| !n.from_host) {
        s.push_str(
            "* named after its root directory: the tree has no host name; check that it is the Proxmox node's name\n\n",
        );
    }
    if used.is_empty() {
        s.push_str("No node can be mapped: nothing to write.\n");
    } else {
        s.push_str("/etc/pve/mapping/pci.cfg: add these entries (the cluster file system shares the file with every node), or run the pvesh command below\n");
        s.push_str(&pci_cfg);
        s.push_str("Create through the API instead (on any node, as root):\n");
        for (m, _) in mappings.iter().filter(|(m, _)| !m.entries.is_empty()) {
            s.push_str(&format!("  {}\n", pm::pvesh(m)));
        }
        s.push_str("\nGuest: proxmox (on any node of the mapping)\n");
        s.push_str(guest.as_deref().unwrap_or(""));
    }
    out!("{s}")?;
    Ok(ExitCode::from(worst))
}
