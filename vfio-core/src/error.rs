//! The crate's one error type.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use passthru_pci_ids::Bdf;

use crate::info::ParseError;
use crate::sys::IovaRange;

/// A file the crate opened, read or wrote, named two ways: where it was opened on this
/// machine ([`HostPath::full`]: under the root the caller gave, `/` live, a snapshot or
/// a fixture tree) and which file it is on the host that root shows
/// ([`HostPath::system`]: `/dev/vfio/16`). It displays as the system path, so an error
/// met under a snapshot reads as on the live host; [`HostPath::full`] is where to look
/// on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPath {
    /// The root (empty for a relative path given with no root).
    root: PathBuf,
    /// The path under it, without a leading `/`.
    rel: PathBuf,
}

impl HostPath {
    /// `rel` (a leading `/` is ignored) under `root`.
    pub fn new(root: &Path, rel: impl AsRef<Path>) -> HostPath {
        let rel = rel.as_ref();
        HostPath {
            root: root.to_path_buf(),
            rel: rel.strip_prefix("/").unwrap_or(rel).to_path_buf(),
        }
    }

    /// A path given as it is, with no root: an absolute one is its own system path (root
    /// `/`), a relative one stays relative.
    pub fn local(path: &Path) -> HostPath {
        match path.strip_prefix("/") {
            Ok(rel) => HostPath::new(Path::new("/"), rel),
            Err(_) => HostPath {
                root: PathBuf::new(),
                rel: path.to_path_buf(),
            },
        }
    }

    /// Where it is on this machine: the root joined with the path under it.
    pub fn full(&self) -> PathBuf {
        self.root.join(&self.rel)
    }

    /// Which file it is on the host the root shows (`/dev/vfio/16`).
    pub fn system(&self) -> PathBuf {
        if self.root.as_os_str().is_empty() {
            self.rel.clone()
        } else {
            Path::new("/").join(&self.rel)
        }
    }

    /// The root it was opened under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path under the root, without a leading `/`.
    pub fn relative(&self) -> &Path {
        &self.rel
    }

    /// `self/more`, under the same root.
    pub fn join(&self, more: impl AsRef<Path>) -> HostPath {
        HostPath {
            root: self.root.clone(),
            rel: self.rel.join(more),
        }
    }
}

impl fmt::Display for HostPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.system().display().fmt(f)
    }
}

impl From<&Path> for HostPath {
    fn from(p: &Path) -> HostPath {
        HostPath::local(p)
    }
}

impl From<&PathBuf> for HostPath {
    fn from(p: &PathBuf) -> HostPath {
        HostPath::local(p)
    }
}

impl From<PathBuf> for HostPath {
    fn from(p: PathBuf) -> HostPath {
        HostPath::local(&p)
    }
}

impl From<&HostPath> for HostPath {
    fn from(p: &HostPath) -> HostPath {
        p.clone()
    }
}

/// A device of a group that keeps the group from being viable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// The device.
    pub bdf: Bdf,
    /// Its current driver.
    pub driver: String,
}

fn blockers_text(b: &[Blocker]) -> String {
    if b.is_empty() {
        return "the kernel says a device of the group is bound to a host driver".into();
    }
    b.iter()
        .map(|b| format!("{} is bound to {}", b.bdf, b.driver))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ranges_text(r: &[IovaRange]) -> String {
    r.iter()
        .map(|r| format!("[{:#x}-{:#x}]", r.start, r.end))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What went wrong, with the path, group, device or offset it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening a VFIO or iommufd node failed.
    #[error("cannot open {path}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Open {
        /// The node.
        path: HostPath,
        /// What to do about it.
        hint: Option<&'static str>,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// An ioctl (or pread/pwrite) failed.
    #[error("{op} on {target} failed{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Ioctl {
        /// The raw ioctl name.
        op: &'static str,
        /// What it was called on (`container /dev/vfio/vfio`, `group 16`, `device 0000:06:00.0`).
        target: String,
        /// What the errno means here, as seen on real kernels.
        hint: Option<&'static str>,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The group is already open elsewhere (`EBUSY` on open).
    #[error("IOMMU group {group} is busy: another process (a running VM?) has {path} open")]
    GroupBusy {
        /// Group id.
        group: u32,
        /// The node.
        path: HostPath,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The group is not viable: a device of it is bound to a host driver.
    #[error("IOMMU group {group} is not viable: {}; bind every device of the group to vfio-pci (or unbind it), or pass the whole group through", blockers_text(blockers))]
    GroupNotViable {
        /// Group id.
        group: u32,
        /// The devices keeping it non-viable (from sysfs).
        blockers: Vec<Blocker>,
    },
    /// `VFIO_GET_API_VERSION` answered something other than 0.
    #[error("{path} speaks VFIO API version {found}, expected 0")]
    ApiVersion {
        /// The container node.
        path: HostPath,
        /// What the kernel answered.
        found: i32,
    },
    /// The container offers no IOMMU backend this crate can use.
    #[error("{path} offers neither the TYPE1v2 nor the TYPE1 IOMMU (is vfio_iommu_type1 loaded and the IOMMU on?)")]
    NoIommuBackend {
        /// The container node.
        path: HostPath,
    },
    /// The kernel's answer to an info ioctl did not parse.
    #[error("malformed {op} answer from {target}")]
    Malformed {
        /// The raw ioctl name.
        op: &'static str,
        /// What it was called on.
        target: String,
        /// What and where.
        #[source]
        source: ParseError,
    },
    /// A DMA mapping was refused before the ioctl: IOVA outside the reported ranges.
    #[error(
        "IOVA {iova:#x}+{size:#x} lies outside the IOMMU's usable ranges {}",
        ranges_text(ranges)
    )]
    IovaOutOfRange {
        /// Requested IOVA.
        iova: u64,
        /// Requested size.
        size: u64,
        /// What the kernel reported.
        ranges: Vec<IovaRange>,
    },
    /// A DMA mapping was refused before the ioctl: misaligned or empty.
    #[error(
        "DMA mapping {what} {value:#x} is not a non-zero multiple of the IOMMU page size {page:#x}"
    )]
    Unaligned {
        /// `iova`, `size` or `vaddr`.
        what: &'static str,
        /// The value.
        value: u64,
        /// The page size.
        page: u64,
    },
    /// A DMA mapping was refused before the ioctl: it overlaps one the space owns.
    #[error("IOVA {iova:#x}+{size:#x} overlaps the mapping at {:#x}+{:#x}", mapped.0, mapped.1)]
    IovaInUse {
        /// Requested IOVA.
        iova: u64,
        /// Requested size.
        size: u64,
        /// The owned mapping in the way: (IOVA, size).
        mapped: (u64, u64),
    },
    /// A part of shared memory to map lies outside that memory.
    #[error(
        "DMA part at offset {offset:#x}+{len:#x} lies outside the memory's {mem_len:#x} bytes"
    )]
    PartOutside {
        /// Offset of the part in the memory.
        offset: u64,
        /// Length of the part.
        len: u64,
        /// Length of the memory.
        mem_len: u64,
    },
    /// No owned mapping starts at this IOVA.
    #[error("no DMA mapping of this space starts at IOVA {iova:#x}")]
    NotMapped {
        /// The IOVA asked for.
        iova: u64,
    },
    /// No IOVA range can hold the requested size.
    #[error(
        "no usable IOVA range holds {size:#x} bytes (ranges {})",
        ranges_text(ranges)
    )]
    NoIovaSpace {
        /// Requested size.
        size: u64,
        /// What the kernel reported.
        ranges: Vec<IovaRange>,
    },
    /// Reading or writing sysfs failed.
    #[error("cannot access {path}")]
    Sysfs {
        /// The file.
        path: HostPath,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The host model could not be read under the root.
    #[error("cannot read the host under {}", root.display())]
    Host {
        /// The root given.
        root: PathBuf,
        /// What iommu-groups reported.
        #[source]
        source: passthru_iommu_groups::Error,
    },
    /// The device is not in sysfs.
    #[error("no PCI device {bdf} at {path}")]
    NoDevice {
        /// The device.
        bdf: Bdf,
        /// Where it was looked for.
        path: HostPath,
    },
    /// The device has no IOMMU group: the IOMMU is off or absent.
    #[error("{bdf} has no IOMMU group ({path} is missing): enable the IOMMU in firmware and on the kernel command line")]
    NoGroup {
        /// The device.
        bdf: Bdf,
        /// The missing link.
        path: HostPath,
    },
    /// The device is not bound to vfio-pci and binding was not requested.
    #[error("{bdf} is bound to {}, not vfio-pci: it must be bound to vfio-pci first (VerifyOptions::bind binds it for the check and restores the driver)", driver.as_deref().unwrap_or("no driver"))]
    NotVfioPci {
        /// The device.
        bdf: Bdf,
        /// Its driver.
        driver: Option<String>,
    },
    /// A bind step did not leave the device on the expected driver.
    #[error("{bdf}: after {step}, driver is {} instead of {expected}", found.as_deref().unwrap_or("none"))]
    BindState {
        /// The device.
        bdf: Bdf,
        /// The step.
        step: &'static str,
        /// Wanted driver.
        expected: String,
        /// Found driver.
        found: Option<String>,
    },
    /// The device stopped answering after a reset (vendor id reads 0xffff).
    #[error("{bdf} did not come back after {how}: vendor id reads {vendor:#06x}")]
    DeadAfterReset {
        /// The device.
        bdf: Bdf,
        /// Which reset.
        how: &'static str,
        /// What was read.
        vendor: u16,
    },
}

/// Crate result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What an errno from `op` means, as the real kernel answers it
/// (as 6.12 guests answered: tests/data/captures/*/vfiotest-*.txt).
pub(crate) fn hint(op: &str, e: &io::Error) -> Option<&'static str> {
    let errno = e.raw_os_error()?;
    Some(match (op, errno) {
        ("VFIO_GROUP_SET_CONTAINER", libc::EPERM) => {
            "the group is not viable: a device in it is bound to a host driver"
        }
        ("VFIO_GROUP_GET_DEVICE_FD", libc::EINVAL) => {
            "the group has no container with an IOMMU set yet"
        }
        ("VFIO_GROUP_GET_DEVICE_FD", libc::ENODEV) => "no such device in this group",
        ("VFIO_GROUP_GET_DEVICE_FD", libc::EACCES) | ("VFIO_DEVICE_BIND_IOMMUFD", libc::EACCES) => {
            "an SR-IOV VF whose PF is held by vfio-pci (or that PF while one of its VFs is open): the PF's VF token (UUID) is required, and the one given (if any) is not it"
        }
        ("VFIO_IOMMU_MAP_DMA", libc::EEXIST) | ("IOMMU_IOAS_MAP", libc::EEXIST) => {
            "the IOVA range overlaps an existing mapping"
        }
        ("VFIO_IOMMU_MAP_DMA", libc::EINVAL) => {
            "IOVA reserved (MSI window) or misaligned, or memory not mapped"
        }
        ("VFIO_IOMMU_MAP_DMA", libc::ENOSPC) => "the container's DMA mapping limit is reached",
        ("VFIO_DEVICE_RESET", libc::EINVAL) => {
            "the kernel has no reset method for this device alone (no RESET flag)"
        }
        ("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", libc::ENODEV) => {
            "no bus or slot reset: the device is on a root bus or its bus cannot be reset"
        }
        ("VFIO_DEVICE_PCI_HOT_RESET", libc::EINVAL) => {
            "not every affected group was passed, a group is not owned, or an SR-IOV VF is on the bus (vfio-pci resets no bus holding VFs)"
        }
        ("VFIO_DEVICE_PCI_HOT_RESET", libc::ENOTTY) => {
            "the bridge refused the secondary bus reset (link not active: check the port's link speed)"
        }
        ("VFIO_DEVICE_PCI_HOT_RESET", libc::EPERM) => "an affected device is not owned by this process",
        // drivers/vfio/container.c vfio_noiommu_ioctl: everything but CHECK_EXTENSION.
        ("VFIO_IOMMU_MAP_DMA", libc::ENOTTY) | ("VFIO_IOMMU_GET_INFO", libc::ENOTTY) => {
            "the container's IOMMU backend maps no DMA: in no-IOMMU mode (vfio-noiommu) the device reaches all memory untranslated"
        }
        ("VFIO_SET_IOMMU", libc::ENODEV) => {
            "no IOMMU backend accepts this container's groups (a no-IOMMU group takes only VFIO_NOIOMMU_IOMMU)"
        }
        ("VFIO_SET_IOMMU", libc::EBUSY) => "the container already has an IOMMU",
        ("VFIO_SET_IOMMU", libc::EINVAL) => "no group is attached to the container",
        // drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl: no handler for MSI
        // and MSI-X mask/unmask, nor for INTx masking through an eventfd.
        ("VFIO_DEVICE_SET_IRQS", libc::ENOTTY) => {
            "this action is not supported on this index (vfio-pci masks and unmasks only INTx), or the VfioSys in use does not implement VFIO_DEVICE_SET_IRQS"
        }
        // vfio_pci_set_intx_trigger / vfio_pci_set_msi_trigger and the bounds checks of
        // vfio_set_irqs_validate_and_prepare (drivers/vfio/vfio_main.c).
        ("VFIO_DEVICE_SET_IRQS", libc::EINVAL) => {
            "vectors past the count VFIO_DEVICE_GET_IRQ_INFO reports, another interrupt index is enabled (disable it first), MSI/MSI-X resized while on, INTx with start other than 0 or count other than 1, or a file descriptor that is not an eventfd"
        }
        ("adopt fd", libc::ENOTTY) | ("F_DUPFD_CLOEXEC", libc::ENOTTY) => {
            "the VfioSys in use does not implement this call (RealSys does)"
        }
        (_, libc::EPERM) | (_, libc::EACCES) => "permission denied: run as root",
        (_, libc::ENOTTY) => "not a VFIO node: is the root a snapshot or fixture tree?",
        _ => return None,
    })
}

impl Error {
    pub(crate) fn ioctl(op: &'static str, target: impl Into<String>, source: io::Error) -> Error {
        Error::Ioctl {
            op,
            target: target.into(),
            hint: hint(op, &source),
            source,
        }
    }

    pub(crate) fn open(path: HostPath, source: io::Error) -> Error {
        let hint = match source.raw_os_error() {
            Some(libc::ENOENT) => Some("no such node: is the vfio (or iommufd) module loaded?"),
            Some(libc::EACCES) | Some(libc::EPERM) => Some("permission denied: run as root"),
            Some(libc::EBUSY) => Some("already open elsewhere"),
            _ => None,
        };
        Error::Open { path, hint, source }
    }

    /// The file this error names, when it names one (system path and where it is on
    /// this machine).
    pub fn path(&self) -> Option<&HostPath> {
        match self {
            Error::Open { path, .. }
            | Error::GroupBusy { path, .. }
            | Error::ApiVersion { path, .. }
            | Error::NoIommuBackend { path, .. }
            | Error::Sysfs { path, .. }
            | Error::NoDevice { path, .. }
            | Error::NoGroup { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The errno of the kernel's answer, when this error carries one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Open { source, .. }
            | Error::Ioctl { source, .. }
            | Error::GroupBusy { source, .. }
            | Error::Sysfs { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A node under a snapshot root: opened at root/dev/vfio/16, named /dev/vfio/16.
    #[test]
    fn a_host_path_is_opened_under_its_root_and_named_as_on_the_host() {
        let p = HostPath::new(Path::new("/tmp/snap1"), "dev/vfio/16");
        assert_eq!(p.full(), Path::new("/tmp/snap1/dev/vfio/16"));
        assert_eq!(p.system(), Path::new("/dev/vfio/16"));
        assert_eq!(p.to_string(), "/dev/vfio/16");
        assert_eq!(p.relative(), Path::new("dev/vfio/16"));
        assert_eq!(
            HostPath::new(Path::new("snap1"), "/dev/iommu").full(),
            Path::new("snap1/dev/iommu")
        );
        // A path given without a root is its own name, absolute or not.
        let live = HostPath::from(Path::new("/dev/vfio/vfio"));
        assert_eq!(
            (live.full(), live.system()),
            ("/dev/vfio/vfio".into(), "/dev/vfio/vfio".into())
        );
        let rel = HostPath::from(Path::new("x/dev/vfio/vfio"));
        assert_eq!(
            (rel.full(), rel.system()),
            ("x/dev/vfio/vfio".into(), "x/dev/vfio/vfio".into())
        );
        assert_eq!(p.join("x").to_string(), "/dev/vfio/16/x");
    }

    #[test]
    fn errors_display_the_system_path_and_carry_both() {
        let e = Error::open(
            HostPath::new(Path::new("/tmp/snap1"), "dev/vfio/vfio"),
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        let msg = e.to_string();
        assert!(msg.starts_with("cannot open /dev/vfio/vfio ("), "{msg}");
        assert!(!msg.contains("snap1"), "{msg}");
        assert_eq!(
            e.path().unwrap().full(),
            Path::new("/tmp/snap1/dev/vfio/vfio")
        );
    }
}
