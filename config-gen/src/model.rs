//! The generator's input: plain facts about the host and the request, so every
//! generator is a pure function testable without sysfs.
//!
//! [`crate::facts`] fills these from a root directory; a caller holding the
//! `iommu-groups` host model can fill them from it instead.

use passthru_iommu_groups::Code;
use passthru_pci_ids::report::{Finding, Severity};
use passthru_pci_ids::{Bdf, ClassCode, DeviceId, Slot, VendorId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The CPU vendor, which decides the IOMMU driver (Intel VT-d or AMD-Vi): the host
/// model's own type.
pub use passthru_iommu_groups::CpuVendor;

/// A kernel release as `uname -r` prints it, reduced to major.minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KernelVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl KernelVersion {
    /// Parse the leading `MAJOR.MINOR` of a release string like `6.8.12-4-pve`.
    pub fn parse(release: &str) -> Option<KernelVersion> {
        let mut it = release.trim().split(|c: char| !c.is_ascii_digit());
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some(KernelVersion { major, minor })
    }

    /// Whether this kernel is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
        #[serde(rename_all = "kebab-case")]
        #[non_exhaustive]
        pub enum $name { $($(#[$vm])* $var),+ }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The name used on the command line and in JSON.
            pub fn as_str(&self) -> &'static str { match self { $($name::$var => $s),+ } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown value {s:?}; expected one of {}", names.join(", "))
                })
            }
        }
    };
}

named_enum! {
    /// Where the kernel command line lives.
    Bootloader {
        /// GRUB: `/etc/default/grub`.
        Grub = "grub",
        /// systemd-boot (and Proxmox's proxmox-boot-tool): `/etc/kernel/cmdline`.
        SystemdBoot = "systemd-boot",
        /// Pop!_OS kernelstub: `/etc/kernelstub/configuration`, changed through `kernelstub`.
        Kernelstub = "kernelstub",
    }
}

named_enum! {
    /// What builds the initramfs.
    Initramfs {
        /// Debian/Ubuntu/Proxmox initramfs-tools.
        InitramfsTools = "initramfs-tools",
        /// Arch mkinitcpio.
        Mkinitcpio = "mkinitcpio",
        /// Fedora/RHEL dracut.
        Dracut = "dracut",
    }
}

named_enum! {
    /// A guest configuration format.
    GuestKind {
        /// Proxmox VE `qm` config lines.
        Proxmox = "proxmox",
        /// A libvirt `<hostdev>` block.
        Libvirt = "libvirt",
        /// QEMU command-line arguments.
        Qemu = "qemu",
        /// cloud-hypervisor `--device` arguments.
        CloudHypervisor = "cloud-hypervisor",
        /// KubeVirt: the `KubeVirt` CR's permitted host devices and a VM's devices (YAML).
        Kubevirt = "kubevirt",
        /// A Proxmox VE cluster-wide PCI mapping (`/etc/pve/mapping/pci.cfg`), its
        /// `pvesh` command and guest lines using it (see [`crate::mapping`]).
        ProxmoxMapping = "proxmox-mapping",
    }
}

impl GuestKind {
    /// What `passthru config` prints without `--guest`: the single-host formats (KubeVirt
    /// and a cluster mapping are asked for by name).
    pub const DEFAULT: &'static [GuestKind] = &[
        GuestKind::Proxmox,
        GuestKind::Libvirt,
        GuestKind::Qemu,
        GuestKind::CloudHypervisor,
    ];
}

/// How `update-grub`-style regeneration is spelled on this distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum GrubFlavor {
    /// Debian family: `update-grub`.
    UpdateGrub,
    /// Fedora/RHEL: `grub2-mkconfig -o /boot/grub2/grub.cfg`.
    Grub2Mkconfig,
    /// Arch and others: `grub-mkconfig -o /boot/grub/grub.cfg`.
    GrubMkconfig,
}

/// One PCI function as the generator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    /// Its address.
    pub bdf: Bdf,
    /// Vendor id.
    pub vendor: VendorId,
    /// Device id.
    pub device: DeviceId,
    /// Class code.
    pub class: ClassCode,
    /// The bound driver (`/sys/bus/pci/devices/X/driver` link name), if any.
    pub driver: Option<String>,
    /// `boot_vga` reads 1: the firmware console is on this GPU.
    pub boot_vga: bool,
    /// Human name (from pci.ids), when known; only used in comments and warnings.
    pub name: Option<String>,
    /// Bytes of 64-bit prefetchable BARs (the guest firmware places them above 4 GiB).
    pub bars64: u64,
    /// The BAR QEMU should move the MSI-X table and PBA to (`x-msix-relocation`),
    /// when the `msix-relocation` finding applies.
    pub msix_relocation: Option<u8>,
}

/// The stable codes of the configuration's warnings (kebab-case in JSON): the
/// generator's own, and the preflight verdicts' [`Code`]s it carries (same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ConfigCode {
    /// `pcie_acs_override` was asked for on a kernel not known to carry the patch.
    AcsOverrideUnsupported,
    /// A line inside passthru's block was not written by passthru.
    BlockEdited,
    /// Functions whose vendor:device another host device shares are bound by address.
    BindByAddress,
    /// An NVIDIA consumer GPU: old guest drivers refuse to run in a VM.
    #[serde(rename = "code-43")]
    Code43,
    /// The CPU vendor is unknown: no IOMMU parameter is chosen.
    CpuUnknown,
    /// A GRUB drop-in replaces the command line passthru edits.
    GrubDropinOverride,
    /// Another function has the same vendor:device id as one vfio-pci claims.
    IdShared,
    /// The user's vfio-pci `ids=` line lacks an id: the fixed line to write.
    IdsConflict,
    /// An `ids=` line is overridden by a later one.
    IdsOverride,
    /// mkinitcpio's HOOKS lack `modconf`.
    ModconfMissing,
    /// No bootloader configuration was found.
    NoBootloader,
    /// `/etc/kernel/cmdline` does not exist.
    NoCmdlineFile,
    /// No initramfs generator was found.
    NoInitramfs,
    /// The kernel loads no modules: vfio-pci's options go on the command line.
    NoModules,
    /// A module that no longer exists on this kernel is loaded by name.
    ObsoleteModule,
    /// The command line sets a wanted parameter differently.
    ParamConflict,
    /// Only some of the drivers that can drive a device are blacklisted.
    PartialBlacklist,
    /// `--remove-param` names a parameter the command line does not have.
    RemoveAbsent,
    /// A parameter to remove is not written where passthru edits.
    RemoveByHand,
    /// The command line has a parameter value the kernel does not document.
    UndocumentedParam,
    /// The device needs the out-of-tree vendor-reset module.
    VendorReset,
    /// `disable_vga=1` contradicts an x-vga guest.
    VgaConflict,
    /// An earlier run's x-vga choice is kept.
    XVgaKept,
    /// libvirt has no x-vga option: the QEMU argument to add by hand.
    XVgaLibvirt,
    /// x-vga in an OVMF guest, which Proxmox does not pass on.
    XVgaOvmf,
    /// A preflight verdict carried into the plan (`reset-bug`, `acs-override`, ...).
    #[serde(untagged)]
    Check(Code),
}

impl ConfigCode {
    /// The generator's own codes, in name order (the carried ones are [`Code`]'s).
    pub const OWN: &[ConfigCode] = &[
        ConfigCode::AcsOverrideUnsupported,
        ConfigCode::BindByAddress,
        ConfigCode::BlockEdited,
        ConfigCode::Code43,
        ConfigCode::CpuUnknown,
        ConfigCode::GrubDropinOverride,
        ConfigCode::IdShared,
        ConfigCode::IdsConflict,
        ConfigCode::IdsOverride,
        ConfigCode::ModconfMissing,
        ConfigCode::NoBootloader,
        ConfigCode::NoCmdlineFile,
        ConfigCode::NoInitramfs,
        ConfigCode::NoModules,
        ConfigCode::ObsoleteModule,
        ConfigCode::ParamConflict,
        ConfigCode::PartialBlacklist,
        ConfigCode::RemoveAbsent,
        ConfigCode::RemoveByHand,
        ConfigCode::UndocumentedParam,
        ConfigCode::VendorReset,
        ConfigCode::VgaConflict,
        ConfigCode::XVgaKept,
        ConfigCode::XVgaLibvirt,
        ConfigCode::XVgaOvmf,
    ];

    /// The code's kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            ConfigCode::AcsOverrideUnsupported => "acs-override-unsupported",
            ConfigCode::BindByAddress => "bind-by-address",
            ConfigCode::BlockEdited => "block-edited",
            ConfigCode::Code43 => "code-43",
            ConfigCode::CpuUnknown => "cpu-unknown",
            ConfigCode::GrubDropinOverride => "grub-dropin-override",
            ConfigCode::IdShared => "id-shared",
            ConfigCode::IdsConflict => "ids-conflict",
            ConfigCode::IdsOverride => "ids-override",
            ConfigCode::ModconfMissing => "modconf-missing",
            ConfigCode::NoBootloader => "no-bootloader",
            ConfigCode::NoCmdlineFile => "no-cmdline-file",
            ConfigCode::NoInitramfs => "no-initramfs",
            ConfigCode::NoModules => "no-modules",
            ConfigCode::ObsoleteModule => "obsolete-module",
            ConfigCode::ParamConflict => "param-conflict",
            ConfigCode::PartialBlacklist => "partial-blacklist",
            ConfigCode::RemoveAbsent => "remove-absent",
            ConfigCode::RemoveByHand => "remove-by-hand",
            ConfigCode::UndocumentedParam => "undocumented-param",
            ConfigCode::VendorReset => "vendor-reset",
            ConfigCode::VgaConflict => "vga-conflict",
            ConfigCode::XVgaKept => "x-vga-kept",
            ConfigCode::XVgaLibvirt => "x-vga-libvirt",
            ConfigCode::XVgaOvmf => "x-vga-ovmf",
            ConfigCode::Check(c) => c.name(),
        }
    }
}

impl fmt::Display for ConfigCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<Code> for ConfigCode {
    fn from(c: Code) -> ConfigCode {
        ConfigCode::Check(c)
    }
}

/// A warning carried into the output (from the preflight verdicts or from the
/// generator): the shared [`passthru_pci_ids::report::Finding`] with [`ConfigCode`]s.
pub type Warning = Finding<ConfigCode>;

/// A generator warning (severity `warn`) about the host as a whole.
pub(crate) fn warning(code: ConfigCode, message: impl Into<String>) -> Warning {
    Finding::new(code, Severity::Warn, message)
}

/// A choice made from what the host shows, with the evidence it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct Detection {
    /// What was chosen: `bootloader`, `grub-update`, `initramfs`.
    pub what: String,
    /// The value chosen (`grub`, `update-grub`, `initramfs-tools`, ...).
    pub value: String,
    /// The file or os-release field it rests on (system paths).
    pub evidence: String,
}

impl Detection {
    /// Build a detection.
    pub fn new(what: &str, value: &str, evidence: String) -> Detection {
        Detection {
            what: what.to_string(),
            value: value.to_string(),
            evidence,
        }
    }
}

/// Facts about the host (what was read under the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// CPU vendor.
    pub cpu: CpuVendor,
    /// Running kernel, when known.
    pub kernel: Option<KernelVersion>,
    /// `CONFIG_INTEL_IOMMU_DEFAULT_ON` of that kernel (from `/boot/config-<release>`), when known.
    pub intel_iommu_default_on: Option<bool>,
    /// `CONFIG_MODULES` of that kernel: `false` when it loads no modules (modprobe.d,
    /// modules-load.d and initramfs module lists then do nothing), when known.
    pub loadable_modules: Option<bool>,
    /// The kernel config file those build options come from (system path), when read.
    pub kernel_config_path: Option<String>,
    /// Whether the kernel carries the out-of-tree ACS override patch (Proxmox kernels do), when known.
    pub acs_override_patch: Option<bool>,
    /// The detected bootloader, if any.
    pub bootloader: Option<Bootloader>,
    /// How GRUB's config is regenerated here.
    pub grub_flavor: GrubFlavor,
    /// Whether `proxmox-boot-tool` is installed (it then owns the boot entries).
    pub proxmox_boot_tool: bool,
    /// The detected initramfs generator, if any.
    pub initramfs: Option<Initramfs>,
    /// Every PCI function of the host (not only the requested ones).
    pub devices: Vec<DeviceFacts>,
    /// Warnings from the preflight verdicts for the requested devices.
    pub findings: Vec<Warning>,
    /// Current content of the configuration files passthru reads or edits, keyed by
    /// system path (`/etc/default/grub`); absent files are absent keys.
    pub files: BTreeMap<String, String>,
    /// How the bootloader, its update command and the initramfs tool were chosen.
    pub detected: Vec<Detection>,
    /// Functions whose BARs hold the firmware's boot framebuffer (`/proc/iomem`).
    pub framebuffer_devices: Vec<Bdf>,
    /// The guest physical address width to set: the IOMMU's address width, when it
    /// is below the CPU's physical address bits (the host's `phys-bits` finding).
    pub guest_phys_bits: Option<u8>,
    /// Device names as pci.ids spells them (`TU104GL [Tesla T4]`, without the vendor),
    /// by vendor and device id, where known: device plugins name resources after them.
    pub device_names: BTreeMap<(VendorId, DeviceId), String>,
}

/// Which devices to configure and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Device sets, one per guest; each slot is expanded to all its functions.
    pub sets: Vec<Vec<Slot>>,
    /// Guest formats to emit.
    pub guests: Vec<GuestKind>,
    /// Override the detected bootloader.
    pub bootloader: Option<Bootloader>,
    /// Override the detected initramfs generator.
    pub initramfs: Option<Initramfs>,
    /// Add `iommu=pt`.
    pub iommu_pt: bool,
    /// Pass the GPU's legacy VGA to the guest (`x-vga`; SeaBIOS guests only).
    pub x_vga: bool,
    /// Also bind early through the kernel command line (`vfio-pci.ids=`).
    pub early_ids: bool,
    /// Blacklist the host drivers (takes them from every other device too).
    pub blacklist: bool,
    /// `pcie_acs_override=` value, only when explicitly asked.
    pub acs_override: Option<String>,
    /// Kernel parameters to remove (the user's own, on explicit request only).
    pub remove_params: Vec<String>,
    /// Slots whose functions stop binding to vfio-pci (`config --remove`): their ids
    /// leave passthru's `ids=`; every other id bound before stays.
    pub remove: Vec<Slot>,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            sets: Vec::new(),
            guests: GuestKind::DEFAULT.to_vec(),
            bootloader: None,
            initramfs: None,
            iommu_pt: true,
            x_vga: false,
            early_ids: false,
            blacklist: false,
            acs_override: None,
            remove_params: Vec::new(),
            remove: Vec::new(),
        }
    }
}
