//! The host model's types.

use crate::facts::ConfigFacts;
use passthru_pci_ids::{Bdf, ClassCode, DeviceId, VendorId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Serde helpers: identifiers serialize as their canonical `Display` text.
pub(crate) mod ser {
    use serde::Serializer;
    use std::fmt::Display;

    pub fn display<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
    pub fn opt_display<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }
    pub fn seq_display<T: Display, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| x.to_string()))
    }
}

/// An IOMMU group number (`/sys/kernel/iommu_groups/N`, `/dev/vfio/N`).
///
/// Its `Debug` is the bare number, as in the kernel's own messages.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct GroupId(pub u32);

impl std::fmt::Debug for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for GroupId {
    type Err = std::num::ParseIntError;
    /// A group number as sysfs names it: decimal digits.
    fn from_str(s: &str) -> Result<GroupId, Self::Err> {
        s.parse().map(GroupId)
    }
}

impl From<u32> for GroupId {
    fn from(v: u32) -> GroupId {
        GroupId(v)
    }
}

impl From<GroupId> for u32 {
    fn from(g: GroupId) -> u32 {
        g.0
    }
}

/// The CPU vendor, from `/proc/cpuinfo`'s `vendor_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum CpuVendor {
    /// `GenuineIntel`: the IOMMU is Intel VT-d (ACPI DMAR, `intel_iommu=`).
    Intel,
    /// `AuthenticAMD` (or `HygonGenuine`): AMD-Vi (ACPI IVRS, `amd_iommu=`).
    Amd,
    /// Anything else, or unknown.
    Other,
}

/// Whether an IOMMU is active and what firmware announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IommuState {
    /// Entries of `sys/class/iommu` (`dmar0`, `ivhd0`, ...).
    pub units: Vec<String>,
    /// Whether `sys/kernel/iommu_groups` holds any group an IOMMU stands behind
    /// (VFIO's no-IOMMU groups do not count).
    pub groups_present: bool,
    /// `sys/firmware/acpi/tables/DMAR` exists (Intel VT-d enabled by firmware).
    pub dmar_table: bool,
    /// `sys/firmware/acpi/tables/IVRS` exists (AMD-Vi enabled by firmware).
    pub ivrs_table: bool,
    /// `dev/vfio/vfio` exists (legacy container API).
    pub vfio_container: bool,
    /// `dev/iommu` exists (iommufd).
    pub iommufd: bool,
}

impl IommuState {
    /// An IOMMU is active: the kernel registered IOMMU units or made groups.
    pub fn active(&self) -> bool {
        !self.units.is_empty() || self.groups_present
    }
}

/// One IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Group number.
    pub id: GroupId,
    /// Its devices (`sys/kernel/iommu_groups/N/devices/*`), sorted.
    #[serde(serialize_with = "ser::seq_display")]
    pub devices: Vec<Bdf>,
    /// Its default domain type (`type`: `DMA`, `DMA-FQ`, `identity`, `blocked`), when readable.
    #[serde(rename = "type")]
    pub domain_type: Option<String>,
    /// A group VFIO made up in its no-IOMMU mode (`name` is
    /// [`NOIOMMU_GROUP_NAME`]): no IOMMU stands behind it, its devices' DMA is not
    /// isolated.
    pub noiommu: bool,
    /// Its reserved IOVA regions (`reserved_regions`: `start end type` lines), when
    /// readable; absent on trees that do not carry the file.
    pub reserved_regions: Option<Vec<ReservedRegion>>,
}

/// One line of a group's `reserved_regions`: a range of I/O virtual addresses the
/// IOMMU keeps for something else, and why (`direct`, `direct-relaxable`,
/// `reserved`, `msi`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReservedRegion {
    /// First address.
    pub start: u64,
    /// Last address (inclusive).
    pub end: u64,
    /// The kernel's type name for the region.
    pub kind: String,
}

/// The `name` VFIO gives the groups it makes in no-IOMMU mode
/// (`vfio.enable_unsafe_noiommu_mode=1`), for devices without an IOMMU group.
pub const NOIOMMU_GROUP_NAME: &str = "vfio-noiommu";

/// One line of the sysfs `resource` file: a BAR, ROM or bridge window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Resource {
    /// Line index (0-5 BARs, 6 ROM, 7+ bridge windows).
    pub index: u8,
    /// Start address.
    pub start: u64,
    /// End address (inclusive).
    pub end: u64,
    /// Kernel resource flags (`IORESOURCE_*`).
    pub flags: u64,
}

impl Resource {
    /// Size in bytes (0 when unused).
    pub fn size(&self) -> u64 {
        if self.end > self.start || (self.start != 0 && self.end == self.start) {
            self.end - self.start + 1
        } else {
            0
        }
    }
}

/// One PCI device as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// Its address.
    #[serde(serialize_with = "ser::display")]
    pub bdf: Bdf,
    /// Its real directory relative to the root (`sys/devices/pci0000:00/.../0000:0b:00.0`).
    pub sysfs_path: PathBuf,
    /// The root bus it hangs from (`pci0000:00`).
    pub root_bus: String,
    /// The bridge chain from the root bus down to its parent bridge (empty on a root bus).
    #[serde(serialize_with = "ser::seq_display")]
    pub upstream: Vec<Bdf>,
    /// Vendor id.
    #[serde(serialize_with = "ser::display")]
    pub vendor: VendorId,
    /// Device id.
    #[serde(serialize_with = "ser::display")]
    pub device: DeviceId,
    /// Subsystem vendor id.
    #[serde(serialize_with = "ser::opt_display")]
    pub subsystem_vendor: Option<VendorId>,
    /// Subsystem device id.
    #[serde(serialize_with = "ser::opt_display")]
    pub subsystem_device: Option<DeviceId>,
    /// Class code.
    #[serde(serialize_with = "ser::display")]
    pub class: ClassCode,
    /// Revision.
    pub revision: Option<u8>,
    /// Bound driver (the `driver` link's name).
    pub driver: Option<String>,
    /// `driver_override`, when set (not `(null)`).
    pub driver_override: Option<String>,
    /// IOMMU group (the `iommu_group` link's name).
    pub iommu_group: Option<GroupId>,
    /// `reset_method` as the kernel probed it at enumeration (may be stale).
    pub reset_method: Option<Vec<String>>,
    /// `boot_vga`: the firmware's boot display.
    pub boot_vga: Option<bool>,
    /// `sriov_totalvfs`.
    pub sriov_totalvfs: Option<u32>,
    /// `sriov_numvfs`.
    pub sriov_numvfs: Option<u32>,
    /// The physical function of a VF (`physfn` link).
    #[serde(serialize_with = "ser::opt_display")]
    pub physfn: Option<Bdf>,
    /// Whether a `rom` attribute exists (an option ROM BAR).
    pub rom: bool,
    /// BARs with a `resourceN_resize` attribute (Resizable BAR).
    pub rebar: Vec<u8>,
    /// `numa_node` (-1 when none).
    pub numa_node: Option<i32>,
    /// `d3cold_allowed`.
    pub d3cold_allowed: Option<bool>,
    /// `power_state` (`D0`, `D3hot`, ...).
    pub power_state: Option<String>,
    /// `power/control`: `auto` lets runtime power management suspend the device
    /// (down to D3cold where the platform can cut its power), `on` keeps it powered.
    pub power_control: Option<String>,
    /// ACPI power resources for D3hot (`_PR3`) on the device's firmware node:
    /// `firmware_node/power_resources_D3hot` exists (drivers/acpi/power.c creates it
    /// only for a non-empty list, and drivers/acpi/scan.c marks D3cold valid only
    /// then). `None` when the device has no ACPI companion (`firmware_node`).
    pub acpi_pr3: Option<bool>,
    /// Non-empty lines of `resource`.
    pub resources: Vec<Resource>,
    /// The raw `config` bytes as read (64, 256 or 4096), when readable.
    #[serde(skip)]
    pub config: Option<Vec<u8>>,
    /// Facts decoded from `config`, when at least the 64-byte header was readable.
    pub facts: Option<ConfigFacts>,
}

impl Device {
    /// A device as the inventory stage reads it: ids, class, driver and group; every
    /// other fact absent.
    pub(crate) fn listed(
        bdf: Bdf,
        sysfs_path: PathBuf,
        vendor: VendorId,
        device: DeviceId,
        class: ClassCode,
        driver: Option<String>,
        iommu_group: Option<GroupId>,
    ) -> Device {
        Device {
            bdf,
            sysfs_path,
            root_bus: String::new(),
            upstream: Vec::new(),
            vendor,
            device,
            subsystem_vendor: None,
            subsystem_device: None,
            class,
            revision: None,
            driver,
            driver_override: None,
            iommu_group,
            reset_method: None,
            boot_vga: None,
            sriov_totalvfs: None,
            sriov_numvfs: None,
            physfn: None,
            rom: false,
            rebar: Vec::new(),
            numa_node: None,
            d3cold_allowed: None,
            power_state: None,
            power_control: None,
            acpi_pr3: None,
            resources: Vec::new(),
            config: None,
            facts: None,
        }
    }

    /// The parent bridge, `None` on a root bus.
    pub fn parent(&self) -> Option<Bdf> {
        self.upstream.last().copied()
    }

    /// On a root bus (no parent bridge).
    pub fn on_root_bus(&self) -> bool {
        self.upstream.is_empty()
    }

    /// A PCI-to-PCI bridge (class 0604/0609 or header layout 1).
    pub fn is_bridge(&self) -> bool {
        self.class.is_pci_bridge() || self.facts.as_ref().is_some_and(|f| f.header_layout == 1)
    }

    /// A bridge of any kind (host, PCI-to-PCI): not an endpoint for group isolation.
    pub fn is_any_bridge(&self) -> bool {
        self.is_bridge() || (self.class.class == 0x06 && self.class.subclass == 0x00)
    }

    /// Bound to vfio-pci.
    pub fn is_vfio_bound(&self) -> bool {
        self.driver.as_deref() == Some("vfio-pci")
    }
}

pub use crate::boot::BootSetup;

/// A root-relative path of the host model (`sys/devices/...`, [`Device::sysfs_path`]) as
/// the host itself names it (`/sys/devices/...`): how every report names a host file,
/// whatever `--root` the facts were read under. A leading `/` is kept, not doubled.
///
/// ```
/// use passthru_iommu_groups::system_path;
/// assert_eq!(system_path("sys/devices/pci0000:00/0000:00:03.1"), "/sys/devices/pci0000:00/0000:00:03.1");
/// assert_eq!(system_path("/dev/kvm"), "/dev/kvm");
/// ```
pub fn system_path(rel: impl AsRef<Path>) -> String {
    let rel = rel.as_ref();
    format!("/{}", rel.strip_prefix("/").unwrap_or(rel).display())
}

/// Something the loader could not read or understand: an absent fact, said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// The path (relative to the root) concerned.
    pub path: PathBuf,
    /// What went wrong and what it means.
    pub message: String,
}

/// How much of the host a load read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Stage {
    /// What a listing prints: each device's ids, class, driver and group, the
    /// groups' members and no-IOMMU mark, and the IOMMU state. Every other fact of a
    /// [`Device`] and [`Group`] is absent, and the host-wide facts (kernel, command
    /// line, CPU, modules, boot setup) are not read.
    Inventory,
    /// Everything the model holds.
    Full,
}

/// The host: PCI devices, IOMMU groups and state, kernel and boot setup.
///
/// Built by [`Host::load`](crate::Host::load) (everything) or
/// [`Host::load_stage`](crate::Host::load_stage) from a root directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// What was read.
    pub stage: Stage,
    /// PCI devices by address.
    #[serde(serialize_with = "ser_devices")]
    pub devices: BTreeMap<Bdf, Device>,
    /// IOMMU groups by number.
    pub groups: BTreeMap<GroupId, Group>,
    /// IOMMU state.
    pub iommu: IommuState,
    /// CPU vendor.
    pub cpu_vendor: CpuVendor,
    /// Kernel release (`proc/sys/kernel/osrelease`).
    pub kernel: Option<String>,
    /// The node's name: the kernel's host name (`proc/sys/kernel/hostname`), else the
    /// first line of `etc/hostname` that is not a comment; absent when neither is
    /// there (most fixture trees) or readable (then with a [`Note`]). Not read at the
    /// inventory stage.
    pub node_name: Option<String>,
    /// Kernel command line (`proc/cmdline`).
    pub cmdline: Option<String>,
    /// Loaded modules (`proc/modules`), when readable (see also [`Host::sys_module`]).
    pub modules: Option<Vec<String>>,
    /// Entries of `sys/module`: loaded modules and built-in ones that have
    /// parameters (e.g. `vfio_pci` built into the kernel), sorted.
    pub sys_module: Vec<String>,
    /// vfio-pci module parameters (`sys/module/vfio_pci/parameters/*`).
    pub vfio_pci_params: BTreeMap<String, String>,
    /// Distribution and boot setup hints.
    pub boot: BootSetup,
    /// `sys/class/dmi/id/chassis_type` (SMBIOS: 8-10, 14, 31 and 32 are portables).
    pub chassis_type: Option<u32>,
    /// `sys/firmware/acpi/tables/VFCT` exists: the firmware carries an AMD GPU's
    /// video BIOS in ACPI (laptops, where the dGPU has no option ROM of its own).
    pub acpi_vfct: bool,
    /// Host-wide facts of the host findings (interrupt remapping, KVM, address
    /// widths, lockdown, framebuffers, device holders); empty at the inventory stage.
    pub platform: crate::load_host::Platform,
    /// What could not be read (absent facts), in reading order.
    pub notes: Vec<Note>,
    /// How the tree was taken, when it is a snapshot that says so.
    pub snapshot: Option<crate::snapshot::SnapshotInfo>,
}

impl Host {
    /// What to do about facts a non-root reader cannot see: run as root, or, for a
    /// snapshot taken without root, take the snapshot again as root.
    pub fn root_advice(&self) -> &'static str {
        match &self.snapshot {
            Some(s) if !s.as_root => {
                "this snapshot was taken without root privileges, so these facts are partial: \
                 take it again as root"
            }
            _ => "run passthru as root",
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Walks over every device of a host ([`Host::scan`]) on this thread (test builds).
    pub(crate) static SCANS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn ser_devices<S: serde::Serializer>(m: &BTreeMap<Bdf, Device>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(m.values())
}
