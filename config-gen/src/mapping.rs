//! Proxmox VE cluster-wide PCI resource mappings: the entries of
//! `/etc/pve/mapping/pci.cfg`, the `pvesh` command that creates them, and guest lines
//! that use them. Pure text from facts the caller gives (one [`MapEntry`] per node).
//!
//! The format, as Proxmox's own code defines it (pve-guest-common
//! `src/PVE/Mapping/PCI.pm`, pve-common `PVE/SectionConfig.pm` and
//! `PVE/JSONSchema.pm`, qemu-server `PVE/QemuServer/PCI.pm`; docs/proxmox-mapping.md
//! says it in our words):
//!
//! - one section per mapping: its id alone on a line (a `pve-configid`: a letter,
//!   then at least one letter, digit, `-` or `_`), then one `\tmap <value>` line per
//!   node entry, then an empty line;
//! - a map value is a property string `id=VVVV:DDDD,iommugroup=N,node=NAME,path=P,
//!   subsystem-id=VVVV:DDDD` (keys in alphabetical order, as the web interface writes
//!   them; the parser takes any order). `path` without a function (`0000:0b:00`) maps
//!   the whole slot, every function, and the other keys are then function 0's;
//! - on guest start Proxmox compares `id`, `subsystem-id` and `iommugroup` with the
//!   node's sysfs and refuses a mismatch, a missing key the device has, or a key the
//!   device lacks: so each is written exactly when the host has it;
//! - the node name is a `pve-node`: letters, digits and inner `-` (no dots: Proxmox
//!   uses the host name up to its first dot).
//!
//! A guest uses a mapping with `hostpciN: mapping=<id>` in place of the address.

use passthru_pci_ids::{DeviceId, VendorId};

/// One node's entry of a mapping: the device Proxmox expects on that node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// The Proxmox node name (a `pve-node`, see [`is_node_name`]).
    pub node: String,
    /// Vendor and device id (of function 0 for a whole slot).
    pub id: (VendorId, DeviceId),
    /// Subsystem vendor and device, when the host has them.
    pub subsystem: Option<(VendorId, DeviceId)>,
    /// The IOMMU group, when the device has one.
    pub iommu_group: Option<u32>,
    /// `0000:0b:00` (whole slot, every function) or `0000:0b:00.0`.
    pub path: String,
}

impl MapEntry {
    /// The `map` property string (keys in alphabetical order).
    pub fn property_string(&self) -> String {
        let mut s = format!("id={}:{}", self.id.0, self.id.1);
        if let Some(g) = self.iommu_group {
            s.push_str(&format!(",iommugroup={g}"));
        }
        s.push_str(&format!(",node={},path={}", self.node, self.path));
        if let Some((v, d)) = self.subsystem {
            s.push_str(&format!(",subsystem-id={v}:{d}"));
        }
        s
    }
}

/// A mapping: its id and one entry per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The mapping id (a `pve-configid`, see [`is_config_id`]).
    pub id: String,
    /// Entries, one per node, in node order.
    pub entries: Vec<MapEntry>,
}

/// Whether `s` is a `pve-configid`: a letter, then one or more letters, digits, `-`
/// or `_` (pve-common `PVE/JSONSchema.pm`, `$CONFIGID_RE`).
pub fn is_config_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
}

/// Whether `s` is a `pve-node`: letters and digits, inner `-` allowed (pve-common
/// `PVE/JSONSchema.pm`, `pve_verify_node_name`).
pub fn is_node_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// The Proxmox node name of a host name: up to its first dot (Proxmox's own node
/// name is the host name so cut).
pub fn node_name(host_name: &str) -> &str {
    host_name.split('.').next().unwrap_or(host_name)
}

/// The id passthru gives a mapping when none is chosen: `pci-VVVV-DDDD`.
pub fn default_id(vendor: VendorId, device: DeviceId) -> String {
    format!("pci-{vendor}-{device}")
}

/// The `pci.cfg` sections of `mappings` (those with entries), as Proxmox writes them.
pub fn pci_cfg(mappings: &[Mapping]) -> String {
    let mut s = String::new();
    for m in mappings.iter().filter(|m| !m.entries.is_empty()) {
        s.push_str(&m.id);
        s.push('\n');
        for e in &m.entries {
            s.push_str(&format!("\tmap {}\n", e.property_string()));
        }
        s.push('\n');
    }
    s
}

/// The `pvesh` command creating `m` through the API (`POST /cluster/mapping/pci`:
/// `--id` and one `--map` per entry; the array parameter is repeated).
pub fn pvesh(m: &Mapping) -> String {
    let mut s = format!("pvesh create /cluster/mapping/pci --id {}", m.id);
    for e in &m.entries {
        // Property strings hold no quote or space: single quotes are enough.
        s.push_str(&format!(" --map '{}'", e.property_string()));
    }
    s
}

/// Guest lines using the mappings `ids`, one `hostpciN` each, with the machine and
/// firmware a PCIe GPU guest needs (as the `proxmox` guest format writes them).
pub fn guest(ids: &[String]) -> String {
    let mut s = String::from(
        "# machine: q35: a PCIe machine; pcie=1 below requires it\nmachine: q35\n\
         # bios: ovmf: UEFI firmware, which modern GPU option ROMs expect; add an EFI vars disk: qm set <vmid> --efidisk0 <storage>:1,efitype=4m\nbios: ovmf\n\
         # cpu: host: expose the real CPU model to the guest GPU driver\ncpu: host\n",
    );
    let mut qm = String::from("qm set VMID --machine q35 --bios ovmf --cpu host");
    for (i, id) in ids.iter().enumerate() {
        s.push_str(&format!(
            "# hostpci{i}: the cluster mapping {id}: on start, Proxmox takes the map line of the node the VM runs on and checks it against that node's device\n\
             hostpci{i}: mapping={id},pcie=1\n"
        ));
        qm.push_str(&format!(" --hostpci{i} mapping={id},pcie=1"));
    }
    s.push_str(&format!(
        "# the same with qm on any node of the mapping (VMID: the VM's id):\n# {qm}\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(node: &str, path: &str) -> MapEntry {
        MapEntry {
            node: node.into(),
            id: (VendorId(0x10de), DeviceId(0x1187)),
            subsystem: Some((VendorId(0x1462), DeviceId(0x2834))),
            iommu_group: Some(8),
            path: path.into(),
        }
    }

    /// pve-guest-common `src/PVE/Mapping/PCI.pm`: the section header is the id alone;
    /// pve-common `SectionConfig.pm` writes each array element as `\t<key> <value>`
    /// and ends a section with an empty line.
    #[test]
    fn pci_cfg_section_as_pve_section_config_writes_it() {
        let m = Mapping {
            id: "gpu".into(),
            entries: vec![entry("pve1", "0000:05:00"), entry("pve2", "0000:06:00.0")],
        };
        assert_eq!(
            pci_cfg(std::slice::from_ref(&m)),
            "gpu\n\tmap id=10de:1187,iommugroup=8,node=pve1,path=0000:05:00,subsystem-id=1462:2834\n\
             \tmap id=10de:1187,iommugroup=8,node=pve2,path=0000:06:00.0,subsystem-id=1462:2834\n\n"
        );
        assert_eq!(
            pvesh(&m),
            "pvesh create /cluster/mapping/pci --id gpu \
             --map 'id=10de:1187,iommugroup=8,node=pve1,path=0000:05:00,subsystem-id=1462:2834' \
             --map 'id=10de:1187,iommugroup=8,node=pve2,path=0000:06:00.0,subsystem-id=1462:2834'"
        );
        // A mapping without entries is not written (Proxmox requires `map`).
        assert_eq!(
            pci_cfg(&[Mapping {
                id: "x1".into(),
                entries: vec![]
            }]),
            ""
        );
    }

    /// Keys the host lacks are left out (PCI.pm `assert_valid` refuses a key the
    /// device does not have).
    #[test]
    fn absent_facts_leave_their_keys_out() {
        let mut e = entry("n", "0000:01:00.0");
        e.subsystem = None;
        e.iommu_group = None;
        assert_eq!(e.property_string(), "id=10de:1187,node=n,path=0000:01:00.0");
    }

    /// pve-common `JSONSchema.pm`: `$CONFIGID_RE` and `pve_verify_node_name`.
    #[test]
    fn pve_config_id_and_node_name_syntax() {
        for ok in ["gpu", "pci-10de-1187", "A_1"] {
            assert!(is_config_id(ok), "{ok}");
        }
        for bad in ["", "g", "1gpu", "-gpu", "gpu.a", "gpu a"] {
            assert!(!is_config_id(bad), "{bad}");
        }
        for ok in ["pve1", "vm-amd-vga-audio", "1node", "a"] {
            assert!(is_node_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a.b", "a_b"] {
            assert!(!is_node_name(bad), "{bad}");
        }
        assert_eq!(node_name("pve1.example.org"), "pve1");
        assert_eq!(
            default_id(VendorId(0x10de), DeviceId(0x1187)),
            "pci-10de-1187"
        );
        assert!(is_config_id(&default_id(
            VendorId(0x10de),
            DeviceId(0x1187)
        )));
    }

    /// qemu-server `PVE/QemuServer/PCI.pm`: `mapping=<pve-configid>` replaces the host
    /// address in `hostpciN`.
    #[test]
    fn guest_lines_use_the_mapping() {
        let g = guest(&["gpu".into(), "nic".into()]);
        assert!(g.contains("\nhostpci0: mapping=gpu,pcie=1\n"), "{g}");
        assert!(g.contains("\nhostpci1: mapping=nic,pcie=1\n"), "{g}");
        assert!(g.contains("\nmachine: q35\n"), "{g}");
        assert!(
            g.contains("--hostpci0 mapping=gpu,pcie=1 --hostpci1 mapping=nic,pcie=1"),
            "{g}"
        );
    }
}
