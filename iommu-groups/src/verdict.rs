//! Preflight verdicts: for each requested device, `pass` / `warn` / `fail` with
//! findings that say what is wrong, why (evidence) and what to do.

use crate::error::Result;
use crate::facts::PortType;
use crate::model::{system_path, CpuVendor, Device, GroupId, Host, NOIOMMU_GROUP_NAME};
use crate::reset::{self, ResetAnalysis, ResetMethod};
use crate::spec::DeviceSpec;
use crate::topology::{Around, Topology};
use passthru_pci_ids::{Bdf, ClassCode, DeviceId, VendorId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub use crate::findings_host::{framebuffer_params, kernel_version};

pub use passthru_pci_ids::report::Severity;

/// The overall verdict for one device: its worst finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No warning or failure.
    Pass,
    /// At least one warning, no failure.
    Warn,
    /// At least one failure.
    Fail,
}

/// The stable finding codes (kebab-case in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Code {
    /// No IOMMU active.
    IommuOff,
    /// The IOMMU is active but the device has no group.
    NoIommuGroup,
    /// The group holds endpoints not in the request.
    GroupShared,
    /// No usable reset.
    NoReset,
    /// A known-broken-reset device (AMD reset bug).
    ResetBug,
    /// Bound to a host driver instead of vfio-pci.
    HostDriver,
    /// The boot display.
    BootVga,
    /// A downstream port on the path lacks ACS or has it disabled.
    AcsMissing,
    /// The groups come from the out-of-tree `pcie_acs_override` patch.
    AcsOverride,
    /// Other functions of the slot go along.
    CompanionFunction,
    // Per-device findings of `findings_device` (docs/findings.md).
    /// Config space reads all ones: the device dropped off the bus.
    Unresponsive,
    /// A bridge, host bridge or PCIe port, not an endpoint.
    NotEndpoint,
    /// The group has a firmware-demanded identity-mapped (`direct`) region.
    DirectMapping,
    /// Idle power-off to D3cold without FLR to come back.
    D3cold,
    /// The 64-bit prefetchable BARs exceed OVMF's default 64-bit MMIO window.
    BarWindow,
    /// The MSI-X table or PBA is not where QEMU can leave it.
    MsixRelocation,
    /// A GPU without display outputs (3D controller, laptop dGPU).
    NoDisplayOutput,
    // Host-wide findings (findings_host.rs).
    /// Interrupt remapping is off: vfio_iommu_type1 refuses devices.
    NoIntremap,
    /// KVM is not usable.
    NoKvm,
    /// The host is itself a virtual machine.
    InVm,
    /// Kernel lockdown / Secure Boot is on.
    Lockdown,
    /// The IOMMU's address width is below the CPU's physical address bits.
    PhysBits,
    /// A boot framebuffer lies in one of the device's BARs.
    Framebuffer,
    /// A host process holds the device open.
    DeviceBusy,
}

impl Code {
    /// The code's kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Code::IommuOff => "iommu-off",
            Code::NoIommuGroup => "no-iommu-group",
            Code::GroupShared => "group-shared",
            Code::NoReset => "no-reset",
            Code::ResetBug => "reset-bug",
            Code::HostDriver => "host-driver",
            Code::BootVga => "boot-vga",
            Code::AcsMissing => "acs-missing",
            Code::AcsOverride => "acs-override",
            Code::CompanionFunction => "companion-function",
            Code::Unresponsive => "unresponsive",
            Code::NotEndpoint => "not-endpoint",
            Code::DirectMapping => "direct-mapping",
            Code::D3cold => "d3cold",
            Code::BarWindow => "bar-window",
            Code::MsixRelocation => "msix-relocation",
            Code::NoDisplayOutput => "no-display-output",
            Code::NoIntremap => "no-intremap",
            Code::NoKvm => "no-kvm",
            Code::InVm => "in-vm",
            Code::Lockdown => "lockdown",
            Code::PhysBits => "phys-bits",
            Code::Framebuffer => "framebuffer",
            Code::DeviceBusy => "device-busy",
        }
    }
}

/// One finding of the preflight verdicts: the shared
/// [`passthru_pci_ids::report::Finding`] with this crate's [`Code`]s.
pub type Finding = passthru_pci_ids::report::Finding<Code>;

/// The verdict for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct DeviceReport {
    /// Address.
    pub bdf: Bdf,
    /// Vendor id (4 lowercase hex digits).
    pub vendor_id: VendorId,
    /// Device id (4 lowercase hex digits).
    pub device_id: DeviceId,
    /// Class code (6 lowercase hex digits), as `list` gives it.
    pub class: ClassCode,
    /// The bound driver, as `list` gives it.
    pub driver: Option<String>,
    /// The device's name from pci.ids, as `list` gives it (filled by the caller that
    /// has the database; `None` here).
    #[serde(default)]
    pub name: Option<String>,
    /// The class's name from pci.ids, as `list` gives it (filled like `name`).
    #[serde(default)]
    pub class_name: Option<String>,
    /// Verdict.
    pub verdict: Verdict,
    /// IOMMU group.
    pub iommu_group: Option<GroupId>,
    /// The other members of its group (bridges included; only endpoints count for `group-shared`).
    pub group_peers: Vec<Bdf>,
    /// The reset methods the kernel would use (recomputed).
    pub reset_methods: Vec<ResetMethod>,
    /// Findings, worst first.
    pub findings: Vec<Finding>,
    /// The full reset analysis (not in the JSON report).
    #[serde(skip)]
    #[cfg_attr(feature = "schemars", schemars(skip))]
    pub reset: ResetAnalysis,
}

/// Whether an IOMMU is active (`enabled` / `disabled` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum IommuStatus {
    /// An IOMMU stands behind the groups.
    Enabled,
    /// No IOMMU is active.
    Disabled,
}

impl IommuStatus {
    /// `Enabled` when an IOMMU is active on `host`.
    pub fn of(host: &Host) -> IommuStatus {
        if host.iommu.active() {
            IommuStatus::Enabled
        } else {
            IommuStatus::Disabled
        }
    }
}

/// Host facts the report repeats, and host-wide findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct HostSummary {
    /// `enabled` or `disabled`.
    pub iommu: IommuStatus,
    /// CPU vendor.
    pub cpu_vendor: CpuVendor,
    /// Kernel release.
    pub kernel: Option<String>,
    /// Kernel command line.
    pub cmdline: Option<String>,
    /// Host-wide findings (`iommu-off`), also when no device was checked.
    pub findings: Vec<Finding>,
}

/// The preflight report (`passthru check --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct Report {
    /// Host facts.
    pub host: HostSummary,
    /// One entry per checked device (requested ones and their companions), by address.
    pub devices: Vec<DeviceReport>,
}

impl Report {
    /// The worst verdict over the devices and the host-wide findings
    /// (`Pass` when nothing was checked and the host has no finding).
    pub fn worst(&self) -> Verdict {
        let host = match self.host.findings.iter().map(|f| f.severity).max() {
            Some(Severity::Fail) => Verdict::Fail,
            Some(Severity::Warn) => Verdict::Warn,
            _ => Verdict::Pass,
        };
        self.devices
            .iter()
            .map(|d| d.verdict)
            .max()
            .unwrap_or(Verdict::Pass)
            .max(host)
    }
}

/// Summary of the host for reports.
pub fn host_summary(host: &Host) -> HostSummary {
    HostSummary {
        iommu: IommuStatus::of(host),
        cpu_vendor: host.cpu_vendor,
        kernel: host.kernel.clone(),
        cmdline: host.cmdline.clone(),
        findings: {
            let mut f = if host.iommu.active() {
                Vec::new()
            } else {
                let (message, evidence) = iommu_off(host);
                vec![Finding::new(Code::IommuOff, Severity::Fail, message).with_evidence(evidence)]
            };
            f.extend(crate::findings_host::host_findings(host));
            f
        },
    }
}

/// Check the devices `specs` name (none: every display device), each with the
/// companion functions it implies. Errors when a spec matches nothing.
///
/// # Errors
///
/// [`crate::Error::NoMatch`] naming the first spec that matches no device.
pub fn check(host: &Host, specs: &[DeviceSpec]) -> Result<Report> {
    check_bdfs(host, &host.request(specs)?)
}

/// Check exactly `bdfs` plus their companions.
///
/// # Errors
/// [`Error::UnknownDevice`](crate::Error::UnknownDevice) (code `unknown-device`)
/// for the first address that is not a device of `host`: a report without it
/// would read as a pass.
pub fn check_bdfs(host: &Host, bdfs: &[Bdf]) -> Result<Report> {
    if let Some(b) = bdfs.iter().find(|b| host.device(**b).is_none()) {
        return Err(crate::Error::UnknownDevice { bdf: *b });
    }
    let request = host.with_companions(bdfs);
    let set: BTreeSet<Bdf> = request.iter().copied().collect();
    // One index for every device checked, instead of scans of the host per device.
    let devices = if request.is_empty() {
        Vec::new()
    } else {
        let topo = Topology::new(host);
        request
            .iter()
            .filter_map(|b| host.device(*b))
            .map(|d| check_device_with(host, &topo, d, &set))
            .collect()
    };
    Ok(Report {
        host: host_summary(host),
        devices,
    })
}

fn cmdline_has(host: &Host, prefix: &str) -> Option<String> {
    host.cmdline
        .as_deref()?
        .split_whitespace()
        .find(|w| w.starts_with(prefix))
        .map(str::to_string)
}

fn bdf_list<'a>(it: impl IntoIterator<Item = &'a Bdf>) -> String {
    it.into_iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Check one device against a request set.
pub fn check_device(host: &Host, d: &Device, request: &BTreeSet<Bdf>) -> DeviceReport {
    check_device_with(host, &host, d, request)
}

/// [`check_device`], asking `around` about neighbours.
fn check_device_with<'h>(
    host: &'h Host,
    around: &impl Around<'h>,
    d: &Device,
    request: &BTreeSet<Bdf>,
) -> DeviceReport {
    let mut f: Vec<Finding> = Vec::new();
    let mut add = |code, severity, message: String, evidence: Vec<String>| {
        f.push(
            Finding::new(code, severity, message)
                .with_evidence(evidence)
                .for_device(d.bdf),
        )
    };
    let id = format!("{}:{}", d.vendor, d.device);

    // iommu-off
    let active = host.iommu.active();
    if !active {
        let (msg, ev) = iommu_off(host);
        add(Code::IommuOff, Severity::Fail, msg, ev);
    }

    // group-shared / no-iommu-group
    let mut group_peers = Vec::new();
    if active {
        match host.group_of(d.bdf) {
            None => add(
                Code::NoIommuGroup,
                Severity::Fail,
                "the IOMMU is on but this device has no IOMMU group, so VFIO cannot use it".into(),
                vec![format!(
                    "{}/iommu_group: absent",
                    system_path(&d.sysfs_path)
                )],
            ),
            Some(g) => {
                group_peers = g.devices.iter().copied().filter(|b| *b != d.bdf).collect();
                // Bridges do not count against isolation (vfio allows them in a group).
                let peers: Vec<&Device> = group_peers
                    .iter()
                    .filter_map(|b| host.device(*b))
                    .filter(|p| !p.is_any_bridge())
                    .collect();
                let outside: Vec<&&Device> =
                    peers.iter().filter(|p| !request.contains(&p.bdf)).collect();
                if !outside.is_empty() {
                    let list = outside
                        .iter()
                        .map(|p| {
                            format!(
                                "{} [{}:{}] ({})",
                                p.bdf,
                                p.vendor,
                                p.device,
                                p.driver.as_deref().unwrap_or("no driver")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    // Only other functions of this card: the fix is to ask for the card.
                    let slot = d.bdf.slot();
                    let advice = if outside.iter().all(|p| p.bdf.slot() == slot) {
                        format!(
                            "They are the other functions of the same card: check and pass the \
                             whole slot (`passthru check {slot}`; Proxmox `hostpci0: {slot}`), \
                             every function bound to vfio-pci."
                        )
                    } else {
                        "Pass those devices too (bound to vfio-pci), or move the card to a slot \
                         with its own group (a CPU-attached slot, or a port with ACS)."
                            .to_string()
                    };
                    add(
                        Code::GroupShared,
                        Severity::Fail,
                        format!(
                            "IOMMU group {} also holds {list}: a group goes to one guest as a whole. \
                             {advice}",
                            g.id
                        ),
                        vec![format!(
                            "/sys/kernel/iommu_groups/{}/devices: {}",
                            g.id,
                            bdf_list(&g.devices)
                        )],
                    );
                }
                if let Some(o) = cmdline_has(host, "pcie_acs_override=") {
                    add(
                        Code::AcsOverride,
                        Severity::Info,
                        format!(
                            "the groups are split by `{o}`, an out-of-tree kernel patch that only \
                             pretends devices are isolated: peer-to-peer DMA between them stays possible"
                        ),
                        vec![format!("/proc/cmdline: {o}")],
                    );
                }
            }
        }
    }

    // resets
    let ra = reset::analyse_with(host, around, d);
    no_reset(host, &ra, d, request, &mut add);
    reset_bug(host, d, &mut add);

    // host-driver
    if let Some(drv) = d.driver.as_deref() {
        if drv != "vfio-pci" && !d.is_any_bridge() {
            add(
                Code::HostDriver,
                Severity::Warn,
                host_driver_message(host, d, drv, &id),
                vec![format!("{}/driver -> {drv}", system_path(&d.sysfs_path))],
            );
        }
    }

    // boot-vga
    if d.boot_vga == Some(true) {
        let mut msg = String::from(
            "this GPU is the boot display: the host console and the EFI/simple framebuffer hold \
             it, and the guest may get a half-initialised card. Best: give the host another GPU \
             (or the iGPU) and make it primary in the firmware setup. ",
        );
        msg.push_str(&crate::findings_host::boot_vga_framebuffer_advice(host));
        add(
            Code::BootVga,
            Severity::Warn,
            msg,
            vec![format!("{}/boot_vga: 1", system_path(&d.sysfs_path))],
        );
    }

    // acs-missing: every downstream port on the path (libvirt's walk)
    acs_missing(host, d, &mut add);
    crate::findings_host::device_findings(host, d, &mut add);

    crate::findings_device::device_findings(host, d, request, &ra, &mut add);

    // companion-function
    if d.bdf.function == 0 && d.class.is_display() {
        let sib = host.slot_siblings(d.bdf);
        if !sib.is_empty() {
            let list = sib
                .iter()
                .map(|s| format!("{} [{}:{}] class {}", s.bdf, s.vendor, s.device, s.class))
                .collect::<Vec<_>>()
                .join(", ");
            add(
                Code::CompanionFunction,
                Severity::Info,
                format!(
                    "the slot's other functions go along: {list}. Pass the whole slot ({} without a \
                     function, e.g. Proxmox `hostpci0: {}`) so every function reaches the same guest",
                    short_slot(d.bdf),
                    short_slot(d.bdf)
                ),
                sib.iter()
                    .map(|s| system_path(&s.sysfs_path))
                    .collect(),
            );
        }
    }

    f.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(&b.code)));
    let verdict = match f.iter().map(|x| x.severity).max() {
        Some(Severity::Fail) => Verdict::Fail,
        Some(Severity::Warn) => Verdict::Warn,
        _ => Verdict::Pass,
    };
    DeviceReport {
        bdf: d.bdf,
        vendor_id: d.vendor,
        device_id: d.device,
        class: d.class,
        driver: d.driver.clone(),
        name: None,
        class_name: None,
        verdict,
        iommu_group: d.iommu_group.filter(|_| active),
        group_peers,
        reset_methods: ra.methods.clone(),
        findings: f,
        reset: ra,
    }
}

fn short_slot(b: Bdf) -> String {
    if b.domain == 0 {
        format!("{:02x}:{:02x}", b.bus, b.device)
    } else {
        b.slot().to_string()
    }
}

fn iommu_off(host: &Host) -> (String, Vec<String>) {
    let noiommu: Vec<String> = host
        .groups
        .values()
        .filter(|g| g.noiommu)
        .map(|g| g.id.to_string())
        .collect();
    let ev = vec![
        "/sys/class/iommu: no entries".to_string(),
        if noiommu.is_empty() {
            "/sys/kernel/iommu_groups: no groups".to_string()
        } else {
            format!(
                "/sys/kernel/iommu_groups: only groups named {NOIOMMU_GROUP_NAME} ({})",
                noiommu.join(", ")
            )
        },
    ];
    let (msg, ev) = iommu_off_advice(host, ev);
    if noiommu.is_empty() {
        return (msg, ev);
    }
    // docs/rules.md: VFIO's no-IOMMU mode lets userspace drive a device with no DMA
    // isolation (the kernel taints itself); it is no substitute for an IOMMU.
    let mut advice = msg.chars();
    let advice = advice
        .next()
        .map(|c| c.to_uppercase().chain(advice).collect::<String>())
        .unwrap_or_default();
    (
        format!(
            "VFIO's no-IOMMU mode is on (vfio.enable_unsafe_noiommu_mode=1, groups \
             {}): the device can be driven from userspace but its DMA is not isolated, so it \
             cannot be given to a VM safely. {advice}",
            noiommu.join(", ")
        ),
        ev,
    )
}

/// Why no IOMMU is active and what to do, by CPU vendor.
fn iommu_off_advice(host: &Host, mut ev: Vec<String>) -> (String, Vec<String>) {
    let cmd = |p: &str| cmdline_has(host, p);
    let msg = match host.cpu_vendor {
        CpuVendor::Intel => {
            ev.push(format!(
                "/sys/firmware/acpi/tables/DMAR: {}",
                if host.iommu.dmar_table {
                    "present"
                } else {
                    "absent"
                }
            ));
            if let Some(off) = cmd("intel_iommu=off") {
                format!("no IOMMU is active: the kernel command line has `{off}`; remove it (and add `intel_iommu=on`)")
            } else if host.iommu.dmar_table {
                "no IOMMU is active although the firmware enabled VT-d (ACPI DMAR table present): \
                 add `intel_iommu=on` to the kernel command line"
                    .to_string()
            } else {
                "no IOMMU is active and the firmware announced none (no ACPI DMAR table): enable \
                 VT-d (Intel Virtualization Technology for Directed I/O) in the firmware setup, then \
                 add `intel_iommu=on` to the kernel command line"
                    .to_string()
            }
        }
        CpuVendor::Amd => {
            ev.push(format!(
                "/sys/firmware/acpi/tables/IVRS: {}",
                if host.iommu.ivrs_table {
                    "present"
                } else {
                    "absent"
                }
            ));
            if let Some(off) = cmd("amd_iommu=off").or_else(|| cmd("iommu=off")) {
                format!("no IOMMU is active: the kernel command line has `{off}`; remove it")
            } else if host.iommu.ivrs_table {
                "no IOMMU is active although the firmware enabled AMD-Vi (ACPI IVRS table present): \
                 check the kernel log for AMD-Vi errors and that the kernel has CONFIG_AMD_IOMMU; \
                 no parameter is needed (`amd_iommu=on` is not a valid value)"
                    .to_string()
            } else {
                "no IOMMU is active and the firmware announced none (no ACPI IVRS table): enable \
                 the IOMMU (AMD-Vi; often under AMD CBS / NBIO) and SVM in the firmware setup; the \
                 kernel then turns it on by itself (`amd_iommu=on` is not a valid value)"
                    .to_string()
            }
        }
        CpuVendor::Other => {
            ev.push(format!(
                "/sys/firmware/acpi/tables: DMAR {}, IVRS {}",
                if host.iommu.dmar_table {
                    "present"
                } else {
                    "absent"
                },
                if host.iommu.ivrs_table {
                    "present"
                } else {
                    "absent"
                }
            ));
            "no IOMMU is active: enable the platform's IOMMU in the firmware setup and the kernel"
                .to_string()
        }
    };
    let Some(msg) = crate::findings_host::nested_iommu_advice(host) else {
        return (msg, ev);
    };
    ev.push("/proc/cpuinfo: flags has hypervisor".into());
    (msg, ev)
}

pub(crate) type Add<'a> = dyn FnMut(Code, Severity, String, Vec<String>) + 'a;

fn no_reset(
    host: &Host,
    ra: &ResetAnalysis,
    d: &Device,
    request: &BTreeSet<Bdf>,
    add: &mut Add<'_>,
) {
    let mut ev: Vec<String> = ra
        .unavailable
        .iter()
        .map(|r| format!("{}: {}", r.method, r.why))
        .collect();
    if let Some(sys) = &d.reset_method {
        ev.push(format!(
            "{}/reset_method (probed at enumeration, may be stale): {}",
            system_path(&d.sysfs_path),
            sys.join(" ")
        ));
    }
    if !ra.methods.is_empty() {
        return;
    }
    if ra.config_unknown {
        add(
            Code::NoReset,
            Severity::Warn,
            format!(
                "cannot tell whether the device has FLR or PM reset: config space is only \
                 readable past 64 bytes as root; {}",
                host.root_advice()
            ),
            ev,
        );
        return;
    }
    match &ra.hot_reset {
        Some(h) => {
            ev.push(format!(
                "hot reset of bridge {} affects {} (groups {:?})",
                h.bridge,
                bdf_list(&h.affected),
                h.groups
            ));
            let all_requested = h.affected.iter().all(|b| request.contains(b));
            if all_requested {
                let what = if h.slot_only {
                    "the whole slot"
                } else {
                    "everything below the bridge"
                };
                add(
                    Code::NoReset,
                    Severity::Warn,
                    format!(
                        "no function-level reset (no FLR, AF FLR, PM or bus reset of its own); VFIO \
                         can still reset {what} with a hot reset of bridge {} because every affected \
                         device ({}) is in this request: they must all go to the same guest (one \
                         owner of groups {:?})",
                        h.bridge,
                        bdf_list(&h.affected),
                        h.groups
                    ),
                    ev,
                );
            } else if h.slot_only {
                add(
                    Code::NoReset,
                    Severity::Fail,
                    format!(
                        "no FLR, PM reset or bus reset available; a whole-slot hot reset of bridge {} \
                         works only when every function ({}) goes to the same guest: pass the whole slot",
                        h.bridge,
                        bdf_list(&h.affected)
                    ),
                    ev,
                );
            } else {
                add(
                    Code::NoReset,
                    Severity::Fail,
                    format!(
                        "no FLR, PM reset or bus reset available; a hot reset of bridge {} would also \
                         reset {} (other slots): it works only if one guest owns all of groups {:?}",
                        h.bridge,
                        bdf_list(h.affected.iter().filter(|b| b.slot() != d.bdf.slot())),
                        h.groups
                    ),
                    ev,
                );
            }
        }
        None => {
            if let Some(why) = &ra.hot_reset_blocked {
                ev.push(format!("hot reset: {why}"));
            }
            add(
                Code::NoReset,
                Severity::Fail,
                "no FLR, PM reset or bus reset available, and no bridge hot reset: the device \
                 keeps its state between guest boots"
                    .into(),
                ev,
            );
        }
    }
}

/// AMD GPUs with the reset bug: family name and whether vendor-reset covers them.
pub fn amd_reset_bug(vendor: VendorId, device: u16) -> Option<(&'static str, bool)> {
    if vendor != VendorId::AMD_ATI {
        return None;
    }
    let fam = match device {
        0x67c0 | 0x67c1 | 0x67c2 | 0x67c4 | 0x67c7 | 0x67d0 | 0x67df | 0x67c8 | 0x67c9 | 0x67ca
        | 0x67cc | 0x67cf | 0x6fdf => "Polaris 10",
        0x67e0 | 0x67e3 | 0x67e8 | 0x67eb | 0x67ef | 0x67ff | 0x67e1 | 0x67e7 | 0x67e9 => {
            "Polaris 11"
        }
        0x6980 | 0x6981 | 0x6985 | 0x6986 | 0x6987 | 0x6995 | 0x6997 | 0x699f => "Polaris 12",
        0x6860..=0x6864 | 0x6867..=0x686f | 0x687f => "Vega 10",
        0x66a0..=0x66a4 | 0x66a7 | 0x66af => "Vega 20",
        0x7310 | 0x7312 | 0x7318 | 0x7319 | 0x731a | 0x731b | 0x731e | 0x731f => "Navi 10",
        0x7340 | 0x7341 | 0x7347 | 0x734f => "Navi 14",
        0x7360 | 0x7362 => "Navi 12",
        0x738c => "MI100",
        0x7300 => return Some(("Fiji", false)),
        _ => return None,
    };
    Some((fam, true))
}

/// Reset trouble reported for newer GPUs, which neither the kernel nor QEMU nor
/// vendor-reset works around: what users met, and where it is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResetReport {
    /// The GPU family (`AMD Navi 31`, `NVIDIA GB202`).
    pub family: &'static str,
    /// What happens and what to do.
    pub what: &'static str,
    /// The public report it rests on.
    pub source: &'static str,
    /// How sure the reports are: `Warn` when they agree, `Info` when they conflict.
    pub severity: Severity,
}

/// [`ResetReport`]s by vendor and device id (ids as Linux' pci.ids and users' `lspci -nn`
/// give them).
pub fn reported_reset_trouble(vendor: VendorId, device: u16) -> Option<ResetReport> {
    const RDNA3: &str = "reportedly does not come back after the guest resets it (the AMD reset \
        bug of the RX 7000 series); upstream vendor-reset does not cover it (a fork adds Navi 32): \
        plan a host reboot between guest boots, and prove it with two guest boots before relying on it";
    const RDNA4: &str = "reportedly stays unusable after a guest restart (RX 9000 series); \
        vendor-reset does not cover it: plan a host reboot between guest boots";
    const APU: &str = "(an integrated GPU) reportedly fails vendor-reset's PSP mode-1 reset and \
        does not come back after a guest restart: plan a host reboot between guest boots";
    const REMBRANDT: &str = "(an integrated GPU) reportedly stops coming back after a guest \
        restart once the guest's AMD driver has run; vendor-reset does not cover it: plan a host \
        reboot between guest boots";
    const NAVI2: &str = "(RX 6000 series): reports conflict: vendor-reset's maintainer states the \
        series resets cleanly, some users report a dead second guest boot; prove it with two \
        guest boots before relying on it";
    const BLACKWELL: &str = "(RTX 50 series) reportedly does not reset when the guest shuts down \
        and can freeze the host; keep the host's NVIDIA driver off it and test two guest boots \
        before relying on it";
    const PRO_BLACKWELL: &str = "reportedly stops responding after a function-level reset under \
        VFIO, like the RTX 5090 of the same chip, and the guest freezes; keep the host's NVIDIA \
        driver off it and test two guest boots before relying on it";
    let r = |family, what, source, severity| {
        Some(ResetReport {
            family,
            what,
            source,
            severity,
        })
    };
    match (vendor, device) {
        (VendorId::AMD_ATI, 0x744c) => r("AMD Navi 31", RDNA3, "github.com/gnif/vendor-reset/issues/97", Severity::Warn),
        (VendorId::AMD_ATI, 0x747e) => r("AMD Navi 32", RDNA3, "github.com/gnif/vendor-reset/issues/97", Severity::Warn),
        (VendorId::AMD_ATI, 0x7480 | 0x7483) => r("AMD Navi 33", RDNA3, "github.com/gnif/vendor-reset/issues/97", Severity::Warn),
        (VendorId::AMD_ATI, 0x7550) => r("AMD Navi 48", RDNA4, "github.com/gnif/vendor-reset/issues/107 (Navi 44; the same RDNA 4 reset)", Severity::Warn),
        (VendorId::AMD_ATI, 0x7590) => r("AMD Navi 44", RDNA4, "github.com/gnif/vendor-reset/issues/107", Severity::Warn),
        (VendorId::AMD_ATI, 0x1681) => r("AMD Rembrandt (Radeon 680M)", REMBRANDT, "github.com/gnif/vendor-reset/issues/59 (a Ryzen 9 6900HX, whose iGPU is the 680M: the reset bug once the guest driver is installed); issues/92 asks vendor-reset for it", Severity::Warn),
        (VendorId::AMD_ATI, 0x15bf | 0x15c8) => r("AMD Phoenix (Radeon 780M)", APU, "github.com/gnif/vendor-reset/issues/82", Severity::Warn),
        (VendorId::AMD_ATI, 0x73a5 | 0x73af | 0x73bf | 0x73df | 0x73ef | 0x73ff) => r(
            "AMD Navi 2x",
            NAVI2,
            "github.com/gnif/vendor-reset/issues/35 (fine), github.com/gnif/vendor-reset/issues/65 (not)",
            Severity::Info,
        ),
        (VendorId::NVIDIA, 0x2b85 | 0x2b87 | 0x2b8c) => r("NVIDIA GB202", BLACKWELL, "github.com/NVIDIA/open-gpu-kernel-modules/issues/853 (RTX 5070 Ti; the same generation)", Severity::Warn),
        // Ids from the "Compatible GPUs" table of NVIDIA's open-gpu-kernel-modules README
        // (driver 610.43; the 550 copy predates the card): 2bb1 Workstation, 2bb4 Max-Q
        // Workstation, 2bb5 Server Edition. The report names the RTX PRO 6000 with the
        // RTX 5090: a function-level reset under VFIO leaves the card unresponsive.
        (VendorId::NVIDIA, 0x2bb1 | 0x2bb4 | 0x2bb5) => r("NVIDIA GB202GL (RTX PRO 6000 Blackwell)", PRO_BLACKWELL, "guiahardware.es, \"RTX 5090 y RTX 6000 PRO: el bug de reset en virtualización que congela las VMs\" (the RTX 5090's reset bug, reproduced on the RTX PRO 6000)", Severity::Warn),
        (VendorId::NVIDIA, 0x2c02 | 0x2c05) => r("NVIDIA GB203", BLACKWELL, "github.com/NVIDIA/open-gpu-kernel-modules/issues/853", Severity::Warn),
        _ => None,
    }
}

/// AMD GPUs QEMU resets itself with its config-space quirk (hw/vfio): Bonaire and Hawaii.
pub fn qemu_amd_reset_quirk(vendor: VendorId, device: u16) -> Option<&'static str> {
    if vendor != VendorId::AMD_ATI {
        return None;
    }
    match device {
        0x6649 | 0x6650 | 0x6651 | 0x6658 | 0x665c | 0x665d => Some("Bonaire"),
        0x67a0 | 0x67a1 | 0x67a2 | 0x67a8 | 0x67a9 | 0x67aa | 0x67b0 | 0x67b1 | 0x67b8 | 0x67b9
        | 0x67ba | 0x67be => Some("Hawaii"),
        _ => None,
    }
}

fn reset_bug(host: &Host, d: &Device, add: &mut Add<'_>) {
    if let Some(fam) = qemu_amd_reset_quirk(d.vendor, d.device.0) {
        add(
            Code::ResetBug,
            Severity::Info,
            format!(
                "AMD {fam} needs a special reset; QEMU's vfio-pci applies its own config-space \
                 reset quirk for it, so use QEMU (Proxmox, libvirt) rather than another VMM"
            ),
            vec![format!(
                "{}: {}:{} is AMD {fam}",
                system_path(&d.sysfs_path),
                d.vendor,
                d.device
            )],
        );
        return;
    }
    let Some((fam, covered)) = amd_reset_bug(d.vendor, d.device.0) else {
        if let Some(r) = reported_reset_trouble(d.vendor, d.device.0) {
            add(
                Code::ResetBug,
                r.severity,
                format!("{} {}", r.family, r.what),
                vec![
                    format!(
                        "{}: {}:{} is {}",
                        system_path(&d.sysfs_path),
                        d.vendor,
                        d.device,
                        r.family
                    ),
                    format!("reported: {}", r.source),
                ],
            );
        }
        return;
    };
    let ev = vec![format!(
        "{}: {}:{} is AMD {fam}",
        system_path(&d.sysfs_path),
        d.vendor,
        d.device
    )];
    let has_ds = d
        .reset_method
        .iter()
        .flatten()
        .any(|m| m == "device_specific");
    if covered && has_ds {
        add(
            Code::ResetBug,
            Severity::Info,
            format!(
                "AMD {fam} has the AMD reset bug; reset_method lists device_specific, so a reset \
                 module (vendor-reset) is in charge"
            ),
            ev,
        );
    } else if covered {
        // Since 5.15 the kernel uses a device-specific reset only when `reset_method`
        // selects it (drivers/pci/pci.c reset_method_store); vendor-reset's README gives
        // the udev rule, with lowercase hex ids.
        let rule = format!(
            "ACTION==\"add\", SUBSYSTEM==\"pci\", ATTR{{vendor}}==\"0x{}\", \
             ATTR{{device}}==\"0x{}\", ATTR{{reset_method}}=\"device_specific\"",
            d.vendor, d.device
        );
        let loaded = host
            .modules
            .iter()
            .flatten()
            .chain(&host.sys_module)
            .any(|m| m == "vendor_reset");
        let mut ev = ev;
        ev.push(format!(
            "vendor_reset {} (proc/modules, sys/module)",
            if loaded { "is loaded" } else { "is not loaded" }
        ));
        let msg = if loaded {
            format!(
                "AMD {fam} often does not come back after a guest resets it (the AMD reset bug). \
                 vendor-reset is loaded, but reset_method does not list device_specific, so the \
                 kernel does not use it: add the udev rule `{rule}` (e.g. to \
                 /etc/udev/rules.d/99-vendor-reset.rules) and reload udev"
            )
        } else {
            format!(
                "AMD {fam} often does not come back after a guest resets it (the AMD reset bug). \
                 The out-of-tree vendor-reset module handles it: install it (dkms), load it before \
                 vfio-pci, and since kernel 5.15 select it with the udev rule `{rule}` (which \
                 writes device_specific to /sys/bus/pci/devices/{}/reset_method)",
                d.bdf
            )
        };
        add(Code::ResetBug, Severity::Warn, msg, ev);
    } else {
        add(
            Code::ResetBug,
            Severity::Warn,
            format!(
                "AMD {fam} has the AMD reset bug and vendor-reset does not cover it: after the guest \
                 reboots or shuts down, the card stays unusable until the host reboots. Plan a host \
                 reboot between guest boots, or use a card that resets cleanly"
            ),
            ev,
        );
    }
}

fn host_driver_message(host: &Host, d: &Device, drv: &str, id: &str) -> String {
    let module = drv.replace('-', "_");
    let listed = host.boot.vfio_pci_ids().iter().any(|x| x == id);
    let softdep = host
        .boot
        .softdeps_on_vfio()
        .iter()
        .any(|m| m.replace('-', "_") == module);
    let blacklisted = host
        .boot
        .blacklisted()
        .iter()
        .any(|m| m.replace('-', "_") == module);
    let mut msg = format!("bound to the host driver {drv}, not vfio-pci.");
    if listed && !softdep {
        msg.push_str(&format!(
            " /etc/modprobe.d already gives vfio-pci ids={id}, but {drv} loaded first: add \
             `softdep {module} pre: vfio-pci` to /etc/modprobe.d/vfio.conf"
        ));
        let gpu_driver = matches!(module.as_str(), "amdgpu" | "radeon" | "nouveau" | "nvidia");
        if gpu_driver && !blacklisted {
            msg.push_str(&format!(" (the blacklist does not name {module})"));
        }
        msg.push_str(", then rebuild the initramfs and reboot.");
    } else if listed && softdep {
        msg.push_str(&format!(
            " /etc/modprobe.d lists {id} for vfio-pci with a softdep on {module}, yet {drv} holds \
             it: the initramfs is probably older than that file; rebuild it (update-initramfs -u -k all) and reboot."
        ));
    } else {
        // modprobe applies every `options vfio-pci` line and the last `ids=` wins
        // (modprobe.d(5)): a second line would unbind what the first one binds.
        let existing = host.boot.vfio_pci_ids();
        let slot = d.bdf.slot();
        if existing.is_empty() {
            msg.push_str(&format!(
                " Run `passthru config {slot}`: it writes `options vfio-pci ids={id}` and \
                 `softdep {module} pre: vfio-pci` to /etc/modprobe.d/vfio.conf with the \
                 initramfs commands; reboot after."
            ));
        } else {
            msg.push_str(&format!(
                " /etc/modprobe.d already binds {} to vfio-pci: a second `ids=` line would \
                 unbind those (the last one wins); run `passthru config {slot}`, which gives the \
                 merged line with {id} added and `softdep {module} pre: vfio-pci`; reboot after.",
                existing.join(",")
            ));
        }
        msg.push_str(&format!(
            " To bind it now instead: echo vfio-pci > /sys/bus/pci/devices/{}/driver_override, \
             unbind, then echo {} > /sys/bus/pci/drivers_probe.",
            d.bdf, d.bdf
        ));
    }
    msg
}

fn acs_missing(host: &Host, d: &Device, add: &mut Add<'_>) {
    for b in &d.upstream {
        let Some(port) = host.device(*b) else {
            continue;
        };
        let Some(facts) = &port.facts else { continue };
        let Some(pcie) = facts.pcie else { continue };
        if pcie.port_type != PortType::DownstreamPort {
            continue;
        }
        let path = format!("{}/config", system_path(&port.sysfs_path));
        if !facts.ext_caps_read {
            add(
                Code::AcsMissing,
                Severity::Info,
                format!(
                    "cannot tell whether downstream port {b} isolates with ACS: its extended config \
                     space is not readable ({})",
                    host.root_advice()
                ),
                vec![format!("{path}: {} bytes", facts.len)],
            );
            continue;
        }
        match facts.acs {
            None => add(
                Code::AcsMissing,
                Severity::Warn,
                format!(
                    "switch downstream port {b} [{}:{}] has no ACS capability: devices behind the \
                     switch can reach each other without the IOMMU, so the kernel puts them in \
                     one IOMMU group (drivers/pci/pci.c pci_acs_path_enabled) and VFIO hands \
                     them out together (libvirt's strict ACS check applies only to the old KVM \
                     assignment, not to VFIO)",
                    port.vendor, port.device
                ),
                vec![format!("{path}: no extended capability 0x000d (ACS)")],
            ),
            Some(a) if !a.isolating() => add(
                Code::AcsMissing,
                Severity::Warn,
                format!(
                    "switch downstream port {b} has ACS but not all of Source Validation, Request \
                     Redirect, Completion Redirect and Upstream Forwarding enabled"
                ),
                vec![format!(
                    "{path}: ACS at {:#05x} capability {:#06x} control {:#06x} (need {:#06x})",
                    a.offset,
                    a.capability,
                    a.control,
                    crate::facts::AcsFacts::LIBVIRT_MASK
                )],
            ),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;
    use crate::model::SCANS;

    fn scans_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
        SCANS.with(|c| c.set(0));
        let v = f();
        (v, SCANS.with(|c| c.get()))
    }

    /// `many_gpus(n)` loaded, then copied into `domains` PCI domains in memory
    /// (3 x n x domains devices, the groups renumbered): a big host without
    /// writing a big tree.
    fn big_host(n: usize, domains: u16) -> Host {
        let dir = tempfile::tempdir().unwrap();
        Fixture::many_gpus(n).write(dir.path()).unwrap();
        let one = Host::load(dir.path()).unwrap();
        let mut host = one.clone();
        host.devices.clear();
        host.groups.clear();
        let stride = one.groups.keys().max().map_or(0, |m| m.0 + 1);
        let at = |b: Bdf, k: u16| Bdf { domain: k, ..b };
        for k in 0..domains {
            for d in one.devices.values() {
                let mut c = d.clone();
                c.bdf = at(d.bdf, k);
                c.upstream = d.upstream.iter().map(|b| at(*b, k)).collect();
                c.root_bus = format!("pci{k:04x}:00");
                c.sysfs_path = d
                    .sysfs_path
                    .to_string_lossy()
                    .replace("0000:", &format!("{k:04x}:"))
                    .into();
                c.iommu_group = d.iommu_group.map(|g| GroupId(g.0 + u32::from(k) * stride));
                host.devices.insert(c.bdf, c);
            }
            for g in one.groups.values() {
                let id = GroupId(g.id.0 + u32::from(k) * stride);
                let devices = g.devices.iter().map(|b| at(*b, k)).collect();
                host.groups.insert(
                    id,
                    crate::Group {
                        id,
                        devices,
                        domain_type: g.domain_type.clone(),
                        noiommu: g.noiommu,
                        reserved_regions: g.reserved_regions.clone(),
                    },
                );
            }
        }
        host
    }

    /// `check` over every GPU walks the host's devices a fixed number of times
    /// (finding the GPUs, building the index), not once per checked device: its
    /// work is linear in the host's size. 2,100 devices, 700 GPUs with audio; the
    /// indexed check reports exactly what per-device scans report.
    #[test]
    fn check_walks_the_devices_a_fixed_number_of_times() {
        let host = big_host(50, 14);
        assert_eq!(host.devices.len(), 2100);
        let (report, scans) = scans_during(|| check(&host, &[]).unwrap());
        assert_eq!(report.devices.len(), 1400);
        assert!(scans <= 2, "{scans} walks over every device");
        // Named devices: one walk per spec to resolve it, plus the index.
        let specs: Vec<DeviceSpec> = ["0000:01:00", "1002:ab28", "0003:02:00.0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let (named, scans) = scans_during(|| check(&host, &specs).unwrap());
        assert_eq!(named.devices.len(), 700 + 2);
        assert!(scans <= specs.len() + 1, "{scans} walks over every device");
        // The same findings as the scanning, per-device path.
        let set: BTreeSet<Bdf> = report.devices.iter().map(|d| d.bdf).collect();
        for r in report.devices.iter().step_by(97) {
            let d = host.device(r.bdf).unwrap();
            assert_eq!(*r, check_device(&host, d, &set));
        }
    }
}
