//! What each command prints under `--json`, as types: every one derives `Serialize`
//! (the CLI prints it) and `Deserialize` (a Rust program reads passthru's JSON back),
//! and [`schemas`] gives the JSON Schema of each command's output, generated from these
//! types and checked in under `docs/schema/<command>.json`.
//!
//! The same key means the same thing in every command: `bdf` (`0000:0b:00.0`),
//! `iommu_group` (a number, `null` without one), `vendor_id` and `device_id` (4
//! lowercase hex digits), `class` (6 lowercase hex digits), `name` (vendor and device
//! from pci.ids), `driver` (the bound driver, `null` for none). Hex ids are strings;
//! offsets, capability ids and sizes are integers. Findings share one shape,
//! [`pci_ids::report::Finding`]: `code` (kebab-case), `severity` (`info` < `warn` <
//! `fail`), `message`, `evidence`, `device`.
//!
//! ```
//! use passthru::report::CheckReport;
//! let json = r#"{"host": {"iommu": "disabled", "cpu_vendor": "amd", "kernel": null,
//!   "cmdline": null, "findings": [{"code": "iommu-off", "severity": "fail",
//!   "message": "turn the IOMMU on", "evidence": [], "device": null}]}, "devices": []}"#;
//! let r: CheckReport = serde_json::from_str(json).unwrap();
//! assert_eq!(r.host.findings[0].code.name(), "iommu-off");
//! ```

use crate::decode::DecodedDevice;
use crate::{config_gen, iommu_groups, pci_ids, vfio_core};
use pci_ids::{Bdf, ClassCode, DeviceId, VendorId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::trial::run::{BootReport, TrialReport};
pub use config_gen::PlanReport;
pub use iommu_groups::{IommuStatus, Report as CheckReport, Verdict};
use std::collections::BTreeMap;
pub use vfio_core::VerifyReport;

/// `passthru list --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ListReport {
    /// Whether an IOMMU is active.
    pub iommu: IommuStatus,
    /// The IOMMU units (`dmar0`, `ivhd0`, ...), as the human output names them.
    pub iommu_units: Vec<String>,
    /// The IOMMU groups, by number.
    pub groups: Vec<ListGroup>,
    /// Devices in no group.
    pub ungrouped: Vec<ListDevice>,
    /// Which pci.ids database gave the names.
    pub pci_ids: NamesSource,
}

/// One IOMMU group of `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ListGroup {
    /// The group's number.
    pub id: u32,
    /// A group VFIO made in its no-IOMMU mode: no IOMMU stands behind it.
    pub noiommu: bool,
    /// Its devices.
    pub devices: Vec<ListDevice>,
}

/// One device of `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ListDevice {
    /// Address.
    pub bdf: Bdf,
    /// Vendor id.
    pub vendor_id: VendorId,
    /// Device id.
    pub device_id: DeviceId,
    /// Class code.
    pub class: ClassCode,
    /// The class's name from pci.ids (subclass, else base class).
    pub class_name: Option<String>,
    /// `Vendor Device` from pci.ids.
    pub name: Option<String>,
    /// The bound driver.
    pub driver: Option<String>,
    /// Its IOMMU group (the group it is listed under), under the key `check` and
    /// `verify` use and with their value: `null` for an ungrouped device and for one in
    /// a VFIO no-IOMMU group (no IOMMU stands behind it).
    #[serde(default)]
    pub iommu_group: Option<u32>,
}

impl ListReport {
    /// The report of `host`'s groups and ungrouped devices, as the caller selected them.
    pub fn new(
        host: &iommu_groups::Host,
        groups: Vec<ListGroup>,
        ungrouped: Vec<ListDevice>,
        pci_ids: NamesSource,
    ) -> ListReport {
        ListReport {
            iommu: IommuStatus::of(host),
            iommu_units: host.iommu.units.clone(),
            groups,
            ungrouped,
            pci_ids,
        }
    }
}

impl ListGroup {
    /// Group `id` with `devices`.
    pub fn new(id: u32, noiommu: bool, devices: Vec<ListDevice>) -> ListGroup {
        ListGroup {
            id,
            noiommu,
            devices,
        }
    }
}

impl ListDevice {
    /// Device `d` of `host`, named from `idx` when given.
    pub fn of(
        host: &iommu_groups::Host,
        d: &iommu_groups::Device,
        idx: Option<&pci_ids::db::PciIdsIndex<'_>>,
    ) -> ListDevice {
        ListDevice {
            bdf: d.bdf,
            vendor_id: d.vendor,
            device_id: d.device,
            class: d.class,
            class_name: class_name(idx, d.class),
            name: crate::decode::device_name(idx, d.vendor, d.device),
            driver: d.driver.clone(),
            // As check says it: a group only where an IOMMU stands behind it (a VFIO
            // no-IOMMU group is listed under `groups`, `noiommu: true`, but the device
            // has no IOMMU group).
            iommu_group: d
                .iommu_group
                .filter(|gid| host.iommu.active() && host.groups.contains_key(gid))
                .map(u32::from),
        }
    }
}

/// The class's name from pci.ids as `list` and `check` give it: the subclass's, else
/// the base class's.
pub fn class_name(idx: Option<&pci_ids::db::PciIdsIndex<'_>>, c: ClassCode) -> Option<String> {
    let i = idx?;
    i.subclass(c.class, c.subclass)
        .or_else(|| i.class(c.class))
        .map(str::to_string)
}

/// Where the names came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct NamesSource {
    /// Which database.
    pub from: NamesFrom,
    /// The database's path: as given for `env`, else a system path.
    pub path: Option<String>,
}

/// Which pci.ids database gave the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NamesFrom {
    /// `$PASSTHRU_PCI_IDS`.
    Env,
    /// The tree's own (`usr/share/misc/pci.ids`, `usr/share/hwdata/pci.ids`).
    Root,
    /// This machine's (the tree has none).
    Machine,
    /// None found: names are `null`.
    None,
}

impl NamesSource {
    /// A source.
    pub fn new(from: NamesFrom, path: Option<String>) -> NamesSource {
        NamesSource { from, path }
    }
}

/// `passthru decode --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct DecodeReport {
    /// Each function of the input, in its order.
    pub devices: Vec<DecodedDevice>,
}

impl DecodeReport {
    /// The report of `devices`.
    pub fn new(devices: Vec<DecodedDevice>) -> DecodeReport {
        DecodeReport { devices }
    }
}

/// `passthru config --json`: the plan, or what `--rollback` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ConfigReport {
    /// `--rollback`.
    Rollback {
        /// What was restored.
        rollback: RollbackReport,
    },
    /// `--guest proxmox-mapping`: one cluster mapping over several nodes.
    Mapping(MappingReport),
    /// The plan (dry run or `--apply`).
    Plan(Box<PlanReport>),
}

/// What `config --rollback` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct RollbackReport {
    /// The backup directory restored from.
    pub backup: String,
    /// Files put back (system paths).
    pub restored: Vec<String>,
    /// Files removed (they did not exist before the apply).
    pub removed: Vec<String>,
    /// Files changed since the apply, whose changed version `--force` kept a copy of.
    pub kept: Vec<KeptFile>,
}

/// A file rollback replaced although it had changed since the apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct KeptFile {
    /// System path.
    pub path: String,
    /// Where the changed version was kept.
    pub copy: String,
}

impl RollbackReport {
    /// From the library's answer.
    pub fn new(r: &config_gen::apply::RolledBack) -> RollbackReport {
        RollbackReport {
            backup: r.backup.display().to_string(),
            restored: r.restored.clone(),
            removed: r.removed.clone(),
            kept: r
                .kept
                .iter()
                .map(|(p, c)| KeptFile {
                    path: p.clone(),
                    copy: c.display().to_string(),
                })
                .collect(),
        }
    }
}

/// `passthru snapshot OUT_DIR --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct SnapshotReport {
    /// The snapshot's directory, as given.
    pub out_dir: String,
    /// PCI functions captured.
    pub devices: usize,
    /// IOMMU groups captured.
    pub groups: usize,
    /// Regular files copied.
    pub files: usize,
    /// Symbolic links recreated.
    pub links: usize,
    /// Directories and markers made.
    pub others: usize,
    /// Bytes copied.
    pub bytes: u64,
    /// Taken with root privileges (else the facts are partial).
    pub as_root: bool,
    /// The loader's notes (`path: message`).
    pub notes: Vec<String>,
}

impl SnapshotReport {
    /// The report of a snapshot of `host` into `out_dir`.
    pub fn new(
        out_dir: &std::path::Path,
        host: &iommu_groups::Host,
        st: &iommu_groups::SnapshotStats,
        notes: Vec<String>,
    ) -> SnapshotReport {
        SnapshotReport {
            out_dir: out_dir.display().to_string(),
            devices: host.devices.len(),
            groups: host.groups.len(),
            files: st.files,
            links: st.links,
            others: st.others,
            bytes: st.bytes,
            as_root: st.as_root,
            notes,
        }
    }
}

/// `passthru labels --json` (the feature file written; `--stdout` prints the file
/// itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct LabelsReport {
    /// Where the feature file was written.
    pub path: String,
    /// Its size in bytes.
    pub bytes: usize,
}

impl LabelsReport {
    /// The report of `bytes` written to `path`.
    pub fn new(path: &std::path::Path, bytes: usize) -> LabelsReport {
        LabelsReport {
            path: path.display().to_string(),
            bytes,
        }
    }
}

/// Any command's error under `--json` (on standard output, with the usual exit code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ErrorReport {
    /// The error.
    pub error: ErrorBody,
}

/// What failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ErrorBody {
    /// `unknown-device`, `host`, `config`, `vfio` or `input`.
    pub kind: String,
    /// The message.
    pub message: String,
    /// The path it names, if any.
    pub path: Option<String>,
}

impl ErrorReport {
    /// An error report.
    pub fn new(kind: &str, message: &str, path: Option<String>) -> ErrorReport {
        ErrorReport {
            error: ErrorBody {
                kind: kind.to_string(),
                message: message.to_string(),
                path,
            },
        }
    }
}

/// Where a node's name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NameFrom {
    /// The host's own name (the kernel's host name, else `/etc/hostname`).
    Hostname,
    /// The root directory's name: the tree has no host name.
    Directory,
}

/// Who a node is: its root and where its name came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct NodeSource {
    /// The node's root, as given.
    pub root: String,
    /// Where its name came from.
    pub name_from: NameFrom,
}

impl NodeSource {
    /// Node rooted at `root`, named from `name_from`.
    pub fn new(root: String, name_from: NameFrom) -> NodeSource {
        NodeSource { root, name_from }
    }
}

/// One node of the fleet check: exactly what `check --json` prints for that host
/// alone, its report or its error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FleetNode {
    /// The node could not be checked.
    Error(ErrorReport),
    /// The node's check report.
    Checked(Box<CheckReport>),
}

/// `passthru check --json` over several roots (`--root` repeated, `--roots-dir`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct FleetCheckReport {
    /// Each node's report, by node name.
    pub nodes: BTreeMap<String, FleetNode>,
    /// Each node's root and name source, by node name.
    pub sources: BTreeMap<String, NodeSource>,
    /// Which nodes can take the workload.
    pub summary: FleetSummary,
}

/// The fleet check's summary; node names sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct FleetSummary {
    /// How many nodes.
    pub nodes: usize,
    /// The DEVICE arguments, as given.
    pub requested: Vec<String>,
    /// Nodes with a device checked and none failing.
    pub can_take: Vec<String>,
    /// Nodes whose worst verdict is `pass`.
    pub pass: Vec<String>,
    /// Nodes whose worst verdict is `warn`.
    pub warn: Vec<String>,
    /// Nodes whose worst verdict is `fail`.
    pub fail: Vec<String>,
    /// Nodes that could not be checked.
    pub error: Vec<String>,
}

impl FleetCheckReport {
    /// The report of `nodes` (name, source, report).
    pub fn new(
        nodes: Vec<(String, NodeSource, FleetNode)>,
        summary: FleetSummary,
    ) -> FleetCheckReport {
        let mut r = FleetCheckReport {
            nodes: BTreeMap::new(),
            sources: BTreeMap::new(),
            summary,
        };
        for (name, source, node) in nodes {
            r.sources.insert(name.clone(), source);
            r.nodes.insert(name, node);
        }
        r
    }
}

impl FleetSummary {
    /// A summary of `nodes` nodes for the `requested` devices; the lists are empty.
    pub fn new(nodes: usize, requested: Vec<String>) -> FleetSummary {
        FleetSummary {
            nodes,
            requested,
            can_take: Vec::new(),
            pass: Vec::new(),
            warn: Vec::new(),
            fail: Vec::new(),
            error: Vec::new(),
        }
    }
}

/// `passthru config --guest proxmox-mapping --json`: the cluster mappings of several
/// nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct MappingReport {
    /// One mapping per DEVICE argument.
    pub mappings: Vec<ClusterMapping>,
    /// The `/etc/pve/mapping/pci.cfg` text of every mapping.
    pub pci_cfg: String,
    /// The guest's configuration using the mappings (`null`: no mapping has an entry).
    pub guest: Option<String>,
}

impl MappingReport {
    /// The report of `mappings`.
    pub fn new(
        mappings: Vec<ClusterMapping>,
        pci_cfg: String,
        guest: Option<String>,
    ) -> MappingReport {
        MappingReport {
            mappings,
            pci_cfg,
            guest,
        }
    }
}

/// One Proxmox cluster mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ClusterMapping {
    /// The mapping id.
    pub id: String,
    /// The DEVICE argument it maps, as given.
    pub device: String,
    /// Its `map` entries (property strings), one per mapped slot.
    pub map: Vec<String>,
    /// The `pvesh` command creating it (`null`: no entry).
    pub pvesh: Option<String>,
    /// What each node gave, by node name.
    pub nodes: BTreeMap<String, MappingNode>,
}

impl ClusterMapping {
    /// Mapping `id` of `device`.
    pub fn new(
        id: String,
        device: String,
        map: Vec<String>,
        pvesh: Option<String>,
        nodes: BTreeMap<String, MappingNode>,
    ) -> ClusterMapping {
        ClusterMapping {
            id,
            device,
            map,
            pvesh,
            nodes,
        }
    }
}

/// What one node gave a cluster mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct MappingNode {
    /// `mapped`, `partly-mapped`, `not-mapped` (the device's slots, with `slots`),
    /// `missing` or `error` (with `message`).
    pub status: MappingStatus,
    /// The device's slots on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<Vec<MappingSlot>>,
    /// Why the node has no entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The node's root, as given.
    pub root: String,
    /// Where its name came from.
    pub name_from: NameFrom,
}

impl MappingNode {
    /// A node with `slots` (status from which are mapped).
    pub fn found(slots: Vec<MappingSlot>, source: NodeSource) -> MappingNode {
        let status = if slots.iter().all(|s| s.mapped) {
            MappingStatus::Mapped
        } else if slots.iter().any(|s| s.mapped) {
            MappingStatus::PartlyMapped
        } else {
            MappingStatus::NotMapped
        };
        MappingNode {
            status,
            slots: Some(slots),
            message: None,
            root: source.root,
            name_from: source.name_from,
        }
    }

    /// A node without an entry: `status` is [`MappingStatus::Missing`] or
    /// [`MappingStatus::Error`].
    pub fn without(status: MappingStatus, message: String, source: NodeSource) -> MappingNode {
        MappingNode {
            status,
            slots: None,
            message: Some(message),
            root: source.root,
            name_from: source.name_from,
        }
    }
}

/// A node's part in a cluster mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MappingStatus {
    /// Every slot mapped.
    Mapped,
    /// Some slots mapped.
    PartlyMapped,
    /// No slot mapped (each fails, without `--force`).
    NotMapped,
    /// The node has no such device.
    Missing,
    /// The node could not be read, or its name is not a Proxmox node name.
    Error,
}

/// One slot of the device on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct MappingSlot {
    /// The slot (`0000:05:00`).
    pub path: String,
    /// How many functions it has.
    pub functions: usize,
    /// Its check verdict.
    pub verdict: Verdict,
    /// Finding codes: the failing ones when the slot fails, else every one.
    pub findings: Vec<String>,
    /// Whether it is in the mapping (it passes, or `--force`).
    pub mapped: bool,
    /// Its `map` entry (property string).
    pub map: String,
}

impl MappingSlot {
    /// A slot.
    pub fn new(
        path: String,
        functions: usize,
        verdict: Verdict,
        findings: Vec<String>,
        mapped: bool,
        map: String,
    ) -> MappingSlot {
        MappingSlot {
            path,
            functions,
            verdict,
            findings,
            mapped,
            map,
        }
    }
}

/// The commands with `--json` output, each with the JSON Schema of what it prints, in
/// the order of `docs/schema/`: `check`, `check-fleet` (`check` over several roots),
/// `config`, `decode`, `error`, `labels`, `list`, `snapshot`, `trial`, `verify`.
pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        ("check", schemars::schema_for!(CheckReport)),
        ("check-fleet", schemars::schema_for!(FleetCheckReport)),
        ("config", schemars::schema_for!(ConfigReport)),
        ("decode", schemars::schema_for!(DecodeReport)),
        ("error", schemars::schema_for!(ErrorReport)),
        ("labels", schemars::schema_for!(LabelsReport)),
        ("list", schemars::schema_for!(ListReport)),
        ("snapshot", schemars::schema_for!(SnapshotReport)),
        ("trial", schemars::schema_for!(TrialReport)),
        ("verify", schemars::schema_for!(VerifyReport)),
    ]
}
