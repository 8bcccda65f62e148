//! `verify`: run the sequence a VMM runs on one device and report it as data.
//!
//! Container or iommufd, group viability, IOMMU setup, a test DMA mapping at an
//! allowed IOVA (then unmapped), the device opened, its config space read through
//! VFIO and compared with sysfs, what the kernel says about reset and hot reset, and
//! optionally the reset itself with a check that the device answers afterwards.
//! Everything opened, mapped or bound is released before `verify` returns: the
//! wrappers are guards, dropped in reverse order of creation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use passthru_iommu_groups::Host;
use passthru_pci_ids::{Bdf, ClassCode, DeviceId, VendorId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use vm_memory::MmapRegion;

use crate::bind::{self, BindGuard, PciSysfs, RestoreLog};
use crate::container::{Container, Extension};
use crate::device::Device;
use crate::dma::{find_iova, DmaSpace, OwnedDma};
use crate::error::{Blocker, Error, HostPath, Result};
use crate::group::Group;
use crate::host;
use crate::info::DeviceFlags;
use crate::iommufd::Iommufd;
use crate::sys::{IovaRange, TrustedVfioSys};

/// Which VFIO user API to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiChoice {
    /// iommufd when the kernel offers `/dev/iommu` and a device cdev, else the container.
    #[default]
    Auto,
    /// The legacy container/group API.
    Container,
    /// iommufd with the device cdev.
    Iommufd,
}

/// The API a report was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `/dev/vfio/vfio` + `/dev/vfio/N`.
    Container,
    /// `/dev/iommu` + `/dev/vfio/devices/vfioX`.
    Iommufd,
}

/// What `verify` should do.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Host root (`/` live); sysfs and the device nodes are read under it.
    pub root: PathBuf,
    /// The device.
    pub bdf: Bdf,
    /// Bind the device to vfio-pci for the check (restored afterwards).
    pub bind: bool,
    /// Also bind the group peers that sit on host drivers (restored afterwards).
    pub bind_peers: bool,
    /// Perform the reset and check the device comes back.
    pub reset: bool,
    /// Which API.
    pub api: ApiChoice,
    /// VF token (UUID text) for an SR-IOV VF whose PF is on vfio-pci.
    pub vf_token: Option<String>,
}

impl VerifyOptions {
    /// Options for `bdf` under `root`, no bind, no reset, API chosen automatically.
    pub fn new(root: &Path, bdf: Bdf) -> Self {
        VerifyOptions {
            root: root.to_path_buf(),
            bdf,
            bind: false,
            bind_peers: false,
            reset: false,
            api: ApiChoice::Auto,
            vf_token: None,
        }
    }
}

/// The stable codes of `verify`'s findings (kebab-case in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum VerifyCode {
    /// Binding to vfio-pci for the check failed.
    BindFailed,
    /// The device was bound to vfio-pci for the check (and restored after).
    Bound,
    /// Config space through VFIO could not be compared with sysfs.
    ConfigCompare,
    /// Config space through VFIO differs from sysfs.
    ConfigMismatch,
    /// Config space could not be read through VFIO.
    ConfigRead,
    /// `VFIO_DEVICE_GET_INFO` failed.
    DeviceInfo,
    /// The test DMA mapping failed.
    DmaMap,
    /// The group is held by another user (a VM, another container).
    GroupBusy,
    /// The group is not viable: a member is on a host driver.
    GroupNotViable,
    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` failed.
    HotResetInfo,
    /// No device reset; only a hot (bus) reset is possible.
    HotResetOnly,
    /// What a hot reset would touch.
    HotResetScope,
    /// A hot reset would touch SR-IOV functions.
    HotResetSriov,
    /// The iommufd path failed.
    Iommufd,
    /// iommufd was not usable; the container API was used.
    IommufdFallback,
    /// No hot reset is possible.
    NoHotReset,
    /// VFIO runs in no-IOMMU mode: no DMA isolation.
    NoIommu,
    /// The device has no IOMMU group.
    NoIommuGroup,
    /// Neither a device reset nor a hot reset is possible.
    NoReset,
    /// VFIO does not report the device as PCI.
    NotPci,
    /// The device is not bound to vfio-pci.
    NotVfioPci,
    /// The device did not answer after the reset.
    ResetDead,
    /// The reset failed.
    ResetFailed,
    /// Restoring the original driver failed.
    RestoreFailed,
    /// A VF token was given for a device that takes none.
    VfTokenIgnored,
    /// Another VFIO error.
    Vfio,
    /// The VFIO device nodes could not be opened.
    VfioUnavailable,
}

impl VerifyCode {
    /// Every code, in name order.
    pub const ALL: &[VerifyCode] = &[
        VerifyCode::BindFailed,
        VerifyCode::Bound,
        VerifyCode::ConfigCompare,
        VerifyCode::ConfigMismatch,
        VerifyCode::ConfigRead,
        VerifyCode::DeviceInfo,
        VerifyCode::DmaMap,
        VerifyCode::GroupBusy,
        VerifyCode::GroupNotViable,
        VerifyCode::HotResetInfo,
        VerifyCode::HotResetOnly,
        VerifyCode::HotResetScope,
        VerifyCode::HotResetSriov,
        VerifyCode::Iommufd,
        VerifyCode::IommufdFallback,
        VerifyCode::NoHotReset,
        VerifyCode::NoIommu,
        VerifyCode::NoIommuGroup,
        VerifyCode::NoReset,
        VerifyCode::NotPci,
        VerifyCode::NotVfioPci,
        VerifyCode::ResetDead,
        VerifyCode::ResetFailed,
        VerifyCode::RestoreFailed,
        VerifyCode::VfTokenIgnored,
        VerifyCode::Vfio,
        VerifyCode::VfioUnavailable,
    ];

    /// The code's kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            VerifyCode::BindFailed => "bind-failed",
            VerifyCode::Bound => "bound",
            VerifyCode::ConfigCompare => "config-compare",
            VerifyCode::ConfigMismatch => "config-mismatch",
            VerifyCode::ConfigRead => "config-read",
            VerifyCode::DeviceInfo => "device-info",
            VerifyCode::DmaMap => "dma-map",
            VerifyCode::GroupBusy => "group-busy",
            VerifyCode::GroupNotViable => "group-not-viable",
            VerifyCode::HotResetInfo => "hot-reset-info",
            VerifyCode::HotResetOnly => "hot-reset-only",
            VerifyCode::HotResetScope => "hot-reset-scope",
            VerifyCode::HotResetSriov => "hot-reset-sriov",
            VerifyCode::Iommufd => "iommufd",
            VerifyCode::IommufdFallback => "iommufd-fallback",
            VerifyCode::NoHotReset => "no-hot-reset",
            VerifyCode::NoIommu => "no-iommu",
            VerifyCode::NoIommuGroup => "no-iommu-group",
            VerifyCode::NoReset => "no-reset",
            VerifyCode::NotPci => "not-pci",
            VerifyCode::NotVfioPci => "not-vfio-pci",
            VerifyCode::ResetDead => "reset-dead",
            VerifyCode::ResetFailed => "reset-failed",
            VerifyCode::RestoreFailed => "restore-failed",
            VerifyCode::VfTokenIgnored => "vf-token-ignored",
            VerifyCode::Vfio => "vfio",
            VerifyCode::VfioUnavailable => "vfio-unavailable",
        }
    }
}

impl std::fmt::Display for VerifyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub use passthru_pci_ids::report::Severity;

/// One observation of `verify`: the shared [`passthru_pci_ids::report::Finding`]
/// with this module's [`VerifyCode`]s.
pub type Finding = passthru_pci_ids::report::Finding<VerifyCode>;

/// Reset facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct ResetReport {
    /// VFIO_DEVICE_GET_INFO has the RESET flag (VFIO_DEVICE_RESET works).
    pub device_reset: bool,
    /// Devices a hot (bus/slot) reset would touch; empty when none is possible.
    pub hot_reset_devices: Vec<String>,
    /// With `--reset`: `"ok"` or the error; `null` when not performed.
    pub performed: Option<String>,
}

/// The result of [`verify`] (serializes to the JSON of `passthru verify --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct VerifyReport {
    /// The device.
    pub bdf: Bdf,
    /// The API used.
    pub api: Api,
    /// Its IOMMU group: the same as `iommu_group`, the key `verify` gave first, kept
    /// for the readers that use it.
    pub group: Option<u32>,
    /// The group is viable (kernel's VIABLE flag when the group was opened, else sysfs).
    pub viable: bool,
    /// `"ok"` or what went wrong.
    pub dma_map: String,
    /// Usable IOVA ranges, inclusive `[start, end]`.
    pub iova_ranges: Vec<[u64; 2]>,
    /// Reset facts.
    pub reset: ResetReport,
    /// Findings, in the order seen.
    pub findings: Vec<Finding>,
    /// Its IOMMU group, under the key `check` uses (the same value as `group`).
    #[serde(default)]
    pub iommu_group: Option<u32>,
    /// Vendor id (4 lowercase hex digits), as `list` and `check` give it.
    #[serde(default)]
    pub vendor_id: Option<VendorId>,
    /// Device id (4 lowercase hex digits), as `list` and `check` give it.
    #[serde(default)]
    pub device_id: Option<DeviceId>,
    /// Class code (6 lowercase hex digits), as `list` and `check` give it.
    #[serde(default)]
    pub class: Option<ClassCode>,
    /// The driver bound when `verify` started, as `list` and `check` give it.
    #[serde(default)]
    pub driver: Option<String>,
    /// The device's name from pci.ids, as `list` gives it (filled by a caller that has
    /// the database; `None` from [`verify`]).
    #[serde(default)]
    pub name: Option<String>,
}

impl VerifyReport {
    /// The report before anything is tried: no group, nothing mapped, no finding.
    pub fn new(bdf: Bdf) -> VerifyReport {
        VerifyReport {
            bdf,
            api: Api::Container,
            iommu_group: None,
            group: None,
            viable: false,
            dma_map: "not attempted".into(),
            iova_ranges: Vec::new(),
            reset: ResetReport::default(),
            findings: Vec::new(),
            vendor_id: None,
            device_id: None,
            class: None,
            driver: None,
            name: None,
        }
    }

    /// Record the device's IOMMU group (under both keys).
    pub fn set_group(&mut self, group: u32) {
        self.iommu_group = Some(group);
        self.group = Some(group);
    }

    /// No finding of severity `fail`.
    pub fn passed(&self) -> bool {
        !self.findings.iter().any(|f| f.severity == Severity::Fail)
    }

    fn add(&mut self, severity: Severity, code: VerifyCode, message: impl Into<String>) {
        self.findings
            .push(Finding::new(code, severity, message).for_device(self.bdf));
    }

    fn fail(&mut self, code: VerifyCode, e: &Error) {
        // The file the error names is the evidence (its system path).
        let evidence = e.path().map(|p| p.to_string());
        self.findings.push(
            Finding::new(code, Severity::Fail, error_chain(e))
                .with_evidence(evidence)
                .for_device(self.bdf),
        );
    }
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Size of the test DMA buffer.
pub const TEST_DMA_SIZE: u64 = 0x10000;
/// Lowest IOVA tried for the test mapping (the real-kernel captures map at 1 MiB).
pub const TEST_DMA_MIN_IOVA: u64 = 0x100000;

/// Run the VMM sequence on `opts.bdf`. Returns `Err` only for input errors (no such
/// device); everything the kernel refuses becomes a finding in the report.
///
/// # Errors
///
/// Error::NoDevice when `opts.bdf` is not in sysfs, Error::Host or Error::Sysfs when the
/// host cannot be read (other failures are findings).
pub fn verify<S, F>(sys: &Arc<S>, sysfs: &F, opts: &VerifyOptions) -> Result<VerifyReport>
where
    S: TrustedVfioSys + ?Sized,
    F: PciSysfs + ?Sized,
{
    let root = opts.root.as_path();
    // Discovery through the iommu-groups host model (the same view `check` uses).
    let model = Host::load(root).map_err(|source| Error::Host {
        root: root.to_path_buf(),
        source,
    })?;
    let Some(device) = model.device(opts.bdf) else {
        return Err(Error::NoDevice {
            bdf: opts.bdf,
            path: HostPath::new(root, host::device_rel(opts.bdf)),
        });
    };
    let mut r = VerifyReport::new(opts.bdf);
    r.vendor_id = Some(device.vendor);
    r.device_id = Some(device.device);
    r.class = Some(device.class);
    r.driver = device.driver.clone();
    let Some(group) = device.iommu_group.map(u32::from) else {
        let e = Error::NoGroup {
            bdf: opts.bdf,
            path: HostPath::new(root, host::device_rel(opts.bdf).join("iommu_group")),
        };
        r.fail(VerifyCode::NoIommuGroup, &e);
        return Ok(r);
    };
    r.set_group(group);
    let blockers = model_blockers(&model, group);
    r.viable = blockers.is_empty();
    let driver = device.driver.clone();

    // Bind the device (and blocking peers) when asked; the guards restore on drop, and a
    // restore failing there (a bind that half failed) is logged for the report.
    let restore_log = RestoreLog::new();
    let mut guards: Vec<BindGuard<F>> = Vec::new();
    let mut todo = Vec::new();
    if driver.as_deref() != Some(bind::VFIO_PCI) {
        if !opts.bind {
            let e = Error::NotVfioPci {
                bdf: opts.bdf,
                driver,
            };
            r.dma_map = "not attempted: device is not bound to vfio-pci".into();
            r.fail(VerifyCode::NotVfioPci, &e);
            return Ok(r);
        }
        todo.push(opts.bdf);
    }
    if opts.bind_peers {
        todo.extend(blockers.iter().map(|b| b.bdf).filter(|b| *b != opts.bdf));
    }
    if !todo.is_empty() {
        match bind::bind_all(sysfs, &todo, &restore_log) {
            Ok(g) => {
                let names: Vec<String> = todo.iter().map(|b| b.to_string()).collect();
                r.add(
                    Severity::Info,
                    VerifyCode::Bound,
                    format!("temporarily bound {} to vfio-pci", names.join(", ")),
                );
                guards = g;
            }
            Err(e) => {
                r.dma_map = "not attempted: binding to vfio-pci failed".into();
                r.fail(VerifyCode::BindFailed, &e);
                restore_findings(&restore_log, &mut r);
                return Ok(r);
            }
        }
    }

    let cdev = host::vfio_cdev(root, opts.bdf);
    let iommu_node = root.join("dev/iommu");
    // A no-IOMMU group has no device cdev (drivers/vfio/vfio.h vfio_device_add): the
    // container API is the only way in.
    let noiommu = host::is_noiommu_group(root, group);
    let use_iommufd = match opts.api {
        ApiChoice::Container => false,
        ApiChoice::Iommufd => true,
        ApiChoice::Auto => !noiommu && cdev.is_some() && iommu_node.exists(),
    };
    let mut done = false;
    if use_iommufd {
        r.api = Api::Iommufd;
        match run_iommufd(sys, opts, group, cdev.as_deref(), &mut r) {
            Ok(()) => done = true,
            Err(e) if opts.api == ApiChoice::Auto => {
                r.add(
                    Severity::Info,
                    VerifyCode::IommufdFallback,
                    format!(
                        "iommufd unusable, using the container API: {}",
                        error_chain(&e)
                    ),
                );
                r.api = Api::Container;
                r.findings.retain(|f| f.severity != Severity::Fail);
            }
            Err(e) => {
                r.fail(VerifyCode::Iommufd, &e);
                done = true;
            }
        }
    }
    if !done {
        r.api = Api::Container;
        let res = if noiommu {
            run_noiommu(sys, opts, group, &mut r)
        } else {
            run_container(sys, opts, group, &mut r)
        };
        if let Err(e) = res {
            let code = match &e {
                Error::GroupNotViable { .. } => VerifyCode::GroupNotViable,
                Error::GroupBusy { .. } => VerifyCode::GroupBusy,
                Error::Open { .. } => VerifyCode::VfioUnavailable,
                _ => VerifyCode::Vfio,
            };
            r.fail(code, &e);
        }
    }

    // Restore drivers explicitly so a failure shows up in the report.
    while let Some(g) = guards.pop() {
        if let Err(e) = g.restore() {
            r.fail(VerifyCode::RestoreFailed, &e);
        }
    }
    restore_findings(&restore_log, &mut r);
    Ok(r)
}

/// Restores that failed while guards were dropped, as `restore-failed` findings.
fn restore_findings(log: &RestoreLog, r: &mut VerifyReport) {
    for f in log.take() {
        r.fail(VerifyCode::RestoreFailed, &f.error);
    }
}

/// Devices of `group` on drivers that keep it from being viable, from the host model.
fn model_blockers(model: &Host, group: u32) -> Vec<Blocker> {
    let Some(g) = model.groups.get(&group.into()) else {
        return Vec::new();
    };
    g.devices
        .iter()
        .filter_map(|b| model.device(*b))
        .filter(|d| !host::driver_keeps_viable(d.driver.as_deref()))
        .map(|d| Blocker {
            bdf: d.bdf,
            driver: d.driver.clone().unwrap_or_default(),
        })
        .collect()
}

/// Map and unmap a test buffer at the lowest allowed IOVA from 1 MiB.
fn dma_test<D: OwnedDma + ?Sized>(space: &D, r: &mut VerifyReport) {
    let page = space.page_size().max(4096);
    let size = TEST_DMA_SIZE.max(page);
    let ranges: Vec<IovaRange> = space.iova_ranges();
    let iova = if ranges.is_empty() {
        Some(TEST_DMA_MIN_IOVA)
    } else {
        find_iova(&ranges, page, size, TEST_DMA_MIN_IOVA)
    };
    let Some(iova) = iova else {
        let e = Error::NoIovaSpace { size, ranges };
        r.dma_map = error_chain(&e);
        r.fail(VerifyCode::DmaMap, &e);
        return;
    };
    match map_test_buffer(space, iova, size) {
        Ok(Ok(())) => r.dma_map = "ok".into(),
        Ok(Err(e)) => {
            r.dma_map = error_chain(&e);
            r.fail(VerifyCode::DmaMap, &e);
        }
        Err(e) => {
            r.dma_map = format!("cannot allocate a test buffer: {e}");
            r.add(Severity::Fail, VerifyCode::DmaMap, r.dma_map.clone());
        }
    }
}

/// Map a fresh anonymous buffer of `size` bytes at `iova` (the space owns it while
/// mapped), then unmap it; the outer error is the allocation's.
fn map_test_buffer<D: OwnedDma + ?Sized>(
    space: &D,
    iova: u64,
    size: u64,
) -> std::result::Result<Result<()>, vm_memory::mmap::MmapRegionError> {
    let mem = MmapRegion::<()>::new(size as usize)?;
    Ok(space
        .map(mem, iova, true)
        .and_then(|()| space.unmap(iova).map(drop)))
}

/// Identity fields of a type-0/1 header: vendor, device, revision, class, header type.
const ID_FIELDS: &[(&str, std::ops::Range<usize>)] = &[
    ("vendor id", 0..2),
    ("device id", 2..4),
    ("revision", 8..9),
    ("class code", 9..12),
    ("header type", 14..15),
];

/// Read config space through VFIO and compare the identity fields with sysfs.
fn config_test<S: TrustedVfioSys + ?Sized>(
    dev: &Device<S>,
    root: &Path,
    bdf: Bdf,
    r: &mut VerifyReport,
) {
    let mut via = vec![0u8; 256];
    let n = match dev.read_config(0, &mut via) {
        Ok(n) => n,
        Err(e) => {
            r.fail(VerifyCode::ConfigRead, &e);
            return;
        }
    };
    via.truncate(n);
    if via.len() < 16 {
        r.add(
            Severity::Fail,
            VerifyCode::ConfigRead,
            format!("config region of {bdf} returned only {n} bytes"),
        );
        return;
    }
    if via[0..2] == [0xff, 0xff] {
        r.add(
            Severity::Fail,
            VerifyCode::ConfigRead,
            format!("{bdf} answers 0xffff through VFIO: the device is not responding"),
        );
        return;
    }
    let sys = match host::read_config(root, bdf) {
        Ok(c) => c,
        Err(e) => {
            r.add(Severity::Warn, VerifyCode::ConfigCompare, error_chain(&e));
            return;
        }
    };
    let mut sys = sys;
    // An SR-IOV VF's config space reads 0xffff as vendor and device id (the SR-IOV
    // specification), while vfio-pci shows the PF's vendor and the VF device id
    // (drivers/vfio/pci/vfio_pci_config.c vfio_config_init): compare those with the
    // kernel's sysfs vendor/device files instead.
    if sys.get(0..4) == Some(&[0xff; 4][..]) && host::physfn(root, bdf).is_some() {
        if let Some((v, d)) = host::sysfs_ids(root, bdf) {
            sys[0..2].copy_from_slice(&v.to_le_bytes());
            sys[2..4].copy_from_slice(&d.to_le_bytes());
        }
    }
    let mut diffs = Vec::new();
    for (name, range) in ID_FIELDS {
        if let (Some(a), Some(b)) = (via.get(range.clone()), sys.get(range.clone())) {
            if a != b {
                diffs.push(format!("{name} {a:02x?} via VFIO vs {b:02x?} in sysfs"));
            }
        }
    }
    if diffs.is_empty() {
        r.add(
            Severity::Info,
            VerifyCode::ConfigRead,
            format!("config space read through VFIO ({n} bytes) matches sysfs identity fields"),
        );
    } else {
        r.add(Severity::Fail, VerifyCode::ConfigMismatch, diffs.join("; "));
    }
}

/// What [`reset_facts`] learnt: the groups a hot reset touches, and whether the kernel
/// would perform it at all.
struct HotReset {
    groups: BTreeSet<u32>,
    usable: bool,
}

fn reset_facts<S: TrustedVfioSys + ?Sized>(
    dev: &Device<S>,
    root: &Path,
    legacy: bool,
    r: &mut VerifyReport,
) -> HotReset {
    let mut groups = BTreeSet::new();
    let mut usable = false;
    match dev.info() {
        Ok(i) => {
            r.reset.device_reset = i.flags.contains(DeviceFlags::RESET);
            if !i.flags.contains(DeviceFlags::PCI) {
                r.add(
                    Severity::Warn,
                    VerifyCode::NotPci,
                    "VFIO does not report a PCI device",
                );
            }
        }
        Err(e) => r.fail(VerifyCode::DeviceInfo, &e),
    }
    match dev.hot_reset_info() {
        Ok(h) => {
            r.reset.hot_reset_devices = h.devices.iter().map(|d| d.bdf.to_string()).collect();
            // vfio-pci gives every SR-IOV VF a reset set of its own
            // (drivers/vfio/pci/vfio_pci_core.c vfio_pci_core_register_device), and a bus
            // reset needs every device of the bus in one set (vfio_pci_dev_set_resettable):
            // with a VF on the bus the kernel refuses the hot reset with EINVAL, whatever
            // groups are passed (seen on 6.12 with QEMU's nvme PF and two VFs).
            let vfs: Vec<String> = h
                .devices
                .iter()
                .filter(|d| host::physfn(root, d.bdf).is_some())
                .map(|d| d.bdf.to_string())
                .collect();
            usable = !h.devices.is_empty() && vfs.is_empty();
            if !vfs.is_empty() {
                r.add(
                    Severity::Warn,
                    VerifyCode::HotResetSriov,
                    format!(
                        "the bus holds SR-IOV VF(s) {}: vfio-pci keeps each VF in a reset set of its own, so it refuses this hot reset (VFIO_DEVICE_PCI_HOT_RESET: EINVAL) whatever groups are passed",
                        vfs.join(", ")
                    ),
                );
            }
            if legacy {
                groups = h.devices.iter().map(|d| d.group_or_devid).collect();
                let g: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
                let mut msg = format!(
                    "a hot reset would reset {} in IOMMU group(s) {}",
                    r.reset.hot_reset_devices.join(", "),
                    g.join(", ")
                );
                // The groups besides the device's own: VFIO_DEVICE_PCI_HOT_RESET needs an
                // fd of each (else EINVAL), so the VMM must own them too.
                let others: Vec<String> = h
                    .devices
                    .iter()
                    .filter(|d| Some(d.group_or_devid) != r.iommu_group)
                    .map(|d| format!("group {} ({})", d.group_or_devid, d.bdf))
                    .collect();
                if !others.is_empty() {
                    msg.push_str(&format!(
                        "; besides this device's group it touches {}: the VMM must hold those groups too (pass them through, or open them) to hot reset",
                        others.join(", ")
                    ));
                }
                r.add(Severity::Info, VerifyCode::HotResetScope, msg);
            } else {
                r.add(
                    Severity::Info,
                    VerifyCode::HotResetScope,
                    format!(
                        "a hot reset would reset {}",
                        r.reset.hot_reset_devices.join(", ")
                    ),
                );
            }
        }
        Err(e) if e.errno() == Some(libc::ENODEV) => {
            r.add(Severity::Info, VerifyCode::NoHotReset, error_chain(&e));
        }
        Err(e) => r.add(Severity::Warn, VerifyCode::HotResetInfo, error_chain(&e)),
    }
    if !r.reset.device_reset && !usable {
        r.add(
            Severity::Warn,
            VerifyCode::NoReset,
            "VFIO offers neither a device reset nor a hot reset: the device may not work again after the guest stops",
        );
    } else if !r.reset.device_reset {
        r.add(
            Severity::Warn,
            VerifyCode::HotResetOnly,
            "no per-device reset: the VMM must hot reset the bus, which needs every affected group",
        );
    }
    HotReset { groups, usable }
}

fn check_back<S: TrustedVfioSys + ?Sized>(
    dev: &Device<S>,
    bdf: Bdf,
    how: &'static str,
    r: &mut VerifyReport,
) {
    match dev.vendor_id() {
        Ok(0xffff) => {
            let e = Error::DeadAfterReset {
                bdf,
                how,
                vendor: 0xffff,
            };
            r.reset.performed = Some(e.to_string());
            r.fail(VerifyCode::ResetDead, &e);
        }
        Ok(_) => r.reset.performed = Some("ok".into()),
        Err(e) => {
            r.reset.performed = Some(error_chain(&e));
            r.fail(VerifyCode::ResetFailed, &e);
        }
    }
}

/// The group's status into the report; a viable group joins `container` (`true`), a
/// non-viable one gives the error naming its blockers (or `false` should it have become
/// viable meanwhile).
fn join_container<S: TrustedVfioSys + ?Sized>(
    container: &Container<S>,
    group: &Group<S>,
    root: &Path,
    r: &mut VerifyReport,
) -> Result<bool> {
    let st = group.status()?;
    r.viable = st.viable;
    if !st.viable {
        group.require_viable(root)?;
        return Ok(false);
    }
    group.set_container(container)?;
    Ok(true)
}

fn run_container<S: TrustedVfioSys + ?Sized>(
    sys: &Arc<S>,
    opts: &VerifyOptions,
    group_id: u32,
    r: &mut VerifyReport,
) -> Result<()> {
    let root = opts.root.as_path();
    let container = Container::open(sys, HostPath::new(root, "dev/vfio/vfio"))?;
    container.require_api_version()?;
    let iommu = container.best_iommu()?;
    let group = Group::open(sys, root, group_id)?;
    if !join_container(&container, &group, root, r)? {
        return Ok(());
    }
    container.set_iommu(iommu)?;
    let space = container.dma_space()?;
    r.iova_ranges = space
        .iova_ranges()
        .iter()
        .map(|x| [x.start, x.end])
        .collect();
    dma_test(&space, r);
    device_checks(sys, opts, &container, &group, false, r)
}

/// No-IOMMU mode (`vfio.enable_unsafe_noiommu_mode=1`): the group node is
/// `/dev/vfio/noiommu-N` and the container's only backend is vfio-noiommu. The device
/// opens and its config space reads, but nothing translates or isolates its DMA, so the
/// report fails with `no-iommu` and `dma_map` carries the kernel's refusal of a mapping.
fn run_noiommu<S: TrustedVfioSys + ?Sized>(
    sys: &Arc<S>,
    opts: &VerifyOptions,
    group_id: u32,
    r: &mut VerifyReport,
) -> Result<()> {
    let root = opts.root.as_path();
    r.dma_map = "not attempted: no-IOMMU mode has no DMA translation".into();
    r.add(
        Severity::Fail,
        VerifyCode::NoIommu,
        format!(
            "IOMMU group {group_id} is a no-IOMMU group (vfio.enable_unsafe_noiommu_mode=1, node /dev/vfio/noiommu-{group_id}): \
             no IOMMU isolates the device's DMA, so it can read and write all host memory; \
             VFIO maps no DMA for it and no VMM can assign it to a guest. \
             Enable the IOMMU (VT-d/AMD-Vi in firmware, intel_iommu=on on Intel) and leave no-IOMMU mode off"
        ),
    );
    let container = Container::open(sys, HostPath::new(root, "dev/vfio/vfio"))?;
    container.require_api_version()?;
    let group = Group::open_noiommu(sys, root, group_id)?;
    if !join_container(&container, &group, root, r)? {
        return Ok(());
    }
    container.set_iommu(Extension::NoIommu)?;
    // Ask the kernel anyway, so the report carries its own answer (vfio-noiommu:
    // ENOTTY for VFIO_IOMMU_MAP_DMA, drivers/vfio/container.c vfio_noiommu_ioctl).
    let space = container.dma_space_without_info();
    r.dma_map = match map_test_buffer(&space, TEST_DMA_MIN_IOVA, TEST_DMA_SIZE) {
        Ok(Ok(())) => {
            "accepted by the no-IOMMU backend, which translates and isolates nothing".into()
        }
        Ok(Err(e)) => format!("refused: {}", error_chain(&e)),
        Err(e) => format!("not attempted: cannot allocate a test buffer: {e}"),
    };
    device_checks(sys, opts, &container, &group, true, r)
}

/// Open the device from its (attached) group, read its config space through VFIO, state
/// the reset facts, and with `--reset` perform the reset.
fn device_checks<S: TrustedVfioSys + ?Sized>(
    sys: &Arc<S>,
    opts: &VerifyOptions,
    container: &Container<S>,
    group: &Group<S>,
    noiommu: bool,
    r: &mut VerifyReport,
) -> Result<()> {
    let root = opts.root.as_path();
    let group_id = group.id();
    let name = opts.bdf.to_string();
    let dev = match &opts.vf_token {
        Some(t) => group.device_with_token(&name, t)?,
        None => group.device(&name)?,
    };
    config_test(&dev, root, opts.bdf, r);
    let hot = reset_facts(&dev, root, true, r);
    let groups = hot.groups;
    if opts.reset {
        if r.reset.device_reset {
            match dev.reset() {
                Ok(()) => check_back(&dev, opts.bdf, "VFIO_DEVICE_RESET", r),
                Err(e) => {
                    r.reset.performed = Some(error_chain(&e));
                    r.fail(VerifyCode::ResetFailed, &e);
                }
            }
        } else if hot.usable {
            // Every affected group must be owned: open the others into this container.
            let mut others = Vec::new();
            let mut problem = None;
            for &g in groups.iter().filter(|&&g| g != group_id) {
                let open = if noiommu {
                    Group::open_noiommu(sys, root, g)
                } else {
                    Group::open(sys, root, g)
                };
                let res = open.and_then(|og| {
                    og.require_viable(root)?;
                    og.set_container(container)?;
                    Ok(og)
                });
                match res {
                    Ok(og) => others.push(og),
                    Err(e) => {
                        problem = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = problem {
                r.reset.performed = Some(error_chain(&e));
                r.fail(VerifyCode::ResetFailed, &e);
            } else {
                let mut all: Vec<&Group<S>> = vec![group];
                all.extend(others.iter());
                match dev.hot_reset(&all) {
                    Ok(()) => check_back(&dev, opts.bdf, "VFIO_DEVICE_PCI_HOT_RESET", r),
                    Err(e) => {
                        r.reset.performed = Some(error_chain(&e));
                        r.fail(VerifyCode::ResetFailed, &e);
                    }
                }
            }
        } else {
            r.reset.performed = Some("no reset available".into());
            r.add(
                Severity::Fail,
                VerifyCode::ResetFailed,
                format!("{}: no reset method to perform", opts.bdf),
            );
        }
    }
    Ok(())
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn run_iommufd<S: TrustedVfioSys + ?Sized>(
    sys: &Arc<S>,
    opts: &VerifyOptions,
    group_id: u32,
    cdev: Option<&str>,
    r: &mut VerifyReport,
) -> Result<()> {
    let root = opts.root.as_path();
    let Some(cdev) = cdev else {
        return Err(Error::open(
            HostPath::new(root, host::device_rel(opts.bdf).join("vfio-dev")),
            std::io::Error::from_raw_os_error(libc::ENOENT),
        ));
    };
    let token = match &opts.vf_token {
        Some(t) => Some(parse_uuid(t).ok_or_else(|| {
            Error::ioctl(
                "VFIO_DEVICE_BIND_IOMMUFD",
                format!("device {} (VF token {t:?} is not a UUID)", opts.bdf),
                std::io::Error::from_raw_os_error(libc::EINVAL),
            )
        })?),
        None => None,
    };
    let iommufd = Iommufd::open(sys, HostPath::new(root, "dev/iommu"))?;
    let ioas = iommufd.alloc_ioas()?;
    let dev = Device::open_cdev(
        sys,
        HostPath::new(root, Path::new("dev/vfio/devices").join(cdev)),
        &opts.bdf.to_string(),
    )?;
    // A kernel without VFIO_DEVICE_BIND_FLAG_TOKEN refuses any bind flag with EINVAL
    // (6.12 drivers/vfio/device_cdev.c vfio_df_ioctl_bind_iommufd: `bind.flags` must be
    // 0); such a kernel checks VF tokens only on the group path (vfio_pci_core_match),
    // so bind without it and say so.
    let bound = match dev.bind_iommufd(&iommufd, token) {
        Err(e) if token.is_some() && e.errno() == Some(libc::EINVAL) => {
            r.add(
                Severity::Warn,
                VerifyCode::VfTokenIgnored,
                format!(
                    "this kernel's VFIO_DEVICE_BIND_IOMMUFD takes no VF token ({}): bound without it; in cdev mode such a kernel does not check VF tokens",
                    error_chain(&e)
                ),
            );
            dev.bind_iommufd(&iommufd, None)
        }
        other => other,
    };
    // In cdev mode the kernel checks group viability at bind.
    bound.map_err(|e| {
        if e.errno() == Some(libc::EPERM) || e.errno() == Some(libc::EBUSY) {
            Error::GroupNotViable {
                group: group_id,
                blockers: host::blockers(root, group_id).unwrap_or_default(),
            }
        } else {
            e
        }
    })?;
    r.viable = true;
    dev.attach_ioas(&ioas)?;
    ioas.refresh_ranges()?;
    r.iova_ranges = ioas
        .iova_ranges()
        .iter()
        .map(|x| [x.start, x.end])
        .collect();
    dma_test(&ioas, r);
    config_test(&dev, root, opts.bdf, r);
    let hot = reset_facts(&dev, root, false, r);
    if opts.reset {
        let res = if r.reset.device_reset {
            dev.reset().map(|_| "VFIO_DEVICE_RESET")
        } else if hot.usable {
            dev.hot_reset_cdev().map(|_| "VFIO_DEVICE_PCI_HOT_RESET")
        } else {
            r.reset.performed = Some("no reset available".into());
            r.add(
                Severity::Fail,
                VerifyCode::ResetFailed,
                format!("{}: no reset method to perform", opts.bdf),
            );
            return Ok(());
        };
        match res {
            Ok(how) => check_back(&dev, opts.bdf, how, r),
            Err(e) => {
                r.reset.performed = Some(error_chain(&e));
                r.fail(VerifyCode::ResetFailed, &e);
            }
        }
    }
    drop(dev);
    Ok(())
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
