//! Reset analysis: which reset methods the kernel would use for a device,
//! recomputed from the topology and config space (not trusted from the
//! enumeration-time `reset_method`), following drivers/pci/pci.c and quirks.c
//! as summarized in docs/rules.md ("Reset: the kernel's rules").

use crate::model::ser;
use crate::model::{Device, GroupId, Host};
use crate::topology::Around;
use passthru_pci_ids::{Bdf, VendorId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// A reset method, in the kernel's priority order (`reset_method` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ResetMethod {
    /// A vendor/device quirk (`device_specific`; vendor-reset hooks this). Taken from sysfs.
    DeviceSpecific,
    /// The ACPI `_RST` method. Taken from sysfs.
    Acpi,
    /// PCIe Function Level Reset (DevCap bit 28).
    Flr,
    /// Advanced Features FLR (AF cap with TP and FLR).
    AfFlr,
    /// D3hot -> D0 power-management reset (PMCSR No_Soft_Reset clear).
    Pm,
    /// Secondary bus reset of the parent bridge (device alone on its bus).
    Bus,
}

impl ResetMethod {
    /// The kernel's name for it, as in `reset_method`.
    pub fn name(self) -> &'static str {
        match self {
            ResetMethod::DeviceSpecific => "device_specific",
            ResetMethod::Acpi => "acpi",
            ResetMethod::Flr => "flr",
            ResetMethod::AfFlr => "af_flr",
            ResetMethod::Pm => "pm",
            ResetMethod::Bus => "bus",
        }
    }
}

impl fmt::Display for ResetMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A VFIO hot reset (VFIO_DEVICE_PCI_HOT_RESET) of the parent bridge's secondary bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HotReset {
    /// The bridge whose secondary bus is reset.
    #[serde(serialize_with = "ser::display")]
    pub bridge: Bdf,
    /// Every device the reset affects (on the bus and below), the device itself included.
    #[serde(serialize_with = "ser::seq_display")]
    pub affected: Vec<Bdf>,
    /// The IOMMU groups of the affected devices: one owner must hold them all.
    pub groups: Vec<GroupId>,
    /// Whether every affected device is a function of the device's own slot
    /// (a whole-slot reset: fine when every function goes to the same guest).
    pub slot_only: bool,
}

/// Why a method is not available, or where a fact was missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResetReason {
    /// The method concerned.
    pub method: ResetMethod,
    /// Why it is not available.
    pub why: String,
}

/// The reset analysis of one device.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ResetAnalysis {
    /// The methods the kernel would use, in its priority order.
    pub methods: Vec<ResetMethod>,
    /// Why each other method is not available.
    pub unavailable: Vec<ResetReason>,
    /// Whether config space was too short to decide FLR/AF FLR/PM (non-root reader).
    pub config_unknown: bool,
    /// The VFIO hot reset of the parent bridge, when the kernel would allow it.
    pub hot_reset: Option<HotReset>,
    /// Why a hot reset is not possible, when it is not.
    pub hot_reset_blocked: Option<String>,
}

/// Kernel quirk NO_FLR (quirks.c `quirk_no_flr`): FLR advertised but broken.
pub fn quirk_no_flr(d: &Device) -> bool {
    match (d.vendor.0, d.device.0) {
        (0x1022, 0x1486 | 0x1487 | 0x148c | 0x149c | 0x7901) => true,
        (0x8086, 0x1502 | 0x1503) => true,
        (0x14c3, 0x0616) => true,
        (0xd063, 0x1000) => d.revision == Some(1),
        _ => false,
    }
}

/// Kernel quirk NO_BUS_RESET (quirks.c `quirk_no_bus_reset` and friends).
pub fn quirk_no_bus_reset(d: &Device) -> bool {
    match (d.vendor.0, d.device.0) {
        (0x168c, 0x0030 | 0x0032 | 0x0033 | 0x0034 | 0x003c | 0x003e) => true,
        (0x177d, 0xa100) => true,
        (0x104c, 0xb005) => true,
        (0x10de, dev) => dev & 0xffc0 == 0x2340,
        _ => false,
    }
}

/// Kernel quirk NO_PM_RESET (quirks.c `quirk_no_pm_reset`): every ATI/AMD
/// VGA-class (0300) device that is not on a root bus.
pub fn quirk_no_pm_reset(d: &Device) -> bool {
    d.vendor == VendorId::AMD_ATI && d.class.is_vga() && !d.on_root_bus()
}

fn has_subordinate<'h>(around: &impl Around<'h>, d: &Device) -> bool {
    d.is_bridge() || around.has_children(d.bdf)
}

/// Analyse the resets of `d` on `host`.
pub fn analyse(host: &Host, d: &Device) -> ResetAnalysis {
    analyse_with(host, &host, d)
}

/// [`analyse`], asking `around` (the host's scans, or a [`Topology`](crate::topology::Topology)
/// built once for many devices) about neighbours.
pub(crate) fn analyse_with<'h>(
    host: &'h Host,
    around: &impl Around<'h>,
    d: &Device,
) -> ResetAnalysis {
    let mut methods = Vec::new();
    let mut unavailable = Vec::new();
    let mut no = |m: ResetMethod, why: String| unavailable.push(ResetReason { method: m, why });
    let sysfs: BTreeSet<&str> = d
        .reset_method
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();

    // device_specific and acpi cannot be recomputed from config space: trust sysfs.
    if sysfs.contains("device_specific") {
        methods.push(ResetMethod::DeviceSpecific);
    }
    if sysfs.contains("acpi") {
        methods.push(ResetMethod::Acpi);
    }

    let facts = d.facts.as_ref().filter(|f| f.caps_read);
    let config_unknown = facts.is_none();
    match facts {
        None => {
            let why = "config space not readable past the 64-byte header".to_string();
            for m in [ResetMethod::Flr, ResetMethod::AfFlr, ResetMethod::Pm] {
                no(m, why.clone());
            }
        }
        Some(f) => {
            // flr: DevCap bit 28 and no NO_FLR quirk.
            match f.pcie {
                None => no(ResetMethod::Flr, "not a PCI Express device".into()),
                Some(p) if !p.flr => no(
                    ResetMethod::Flr,
                    format!(
                        "Device Capabilities (cap at {:#04x}) bit 28 FLR is clear",
                        p.offset
                    ),
                ),
                Some(_) if quirk_no_flr(d) => no(
                    ResetMethod::Flr,
                    "FLR is advertised but the kernel's NO_FLR quirk disables it".into(),
                ),
                Some(_) => methods.push(ResetMethod::Flr),
            }
            // af_flr: AF cap with TP and FLR (the kernel and QEMU require both).
            match f.af {
                None => no(ResetMethod::AfFlr, "no Advanced Features capability".into()),
                Some(a) if !(a.tp && a.flr) => no(
                    ResetMethod::AfFlr,
                    format!(
                        "AF capability at {:#04x} lacks {}",
                        a.offset,
                        if a.flr { "TP" } else { "FLR" }
                    ),
                ),
                Some(_) if quirk_no_flr(d) => no(
                    ResetMethod::AfFlr,
                    "the kernel's NO_FLR quirk disables AF FLR too".into(),
                ),
                Some(_) => methods.push(ResetMethod::AfFlr),
            }
            // pm: PM cap, NoSoftRst clear, no NO_PM_RESET quirk.
            match f.pm {
                None => no(ResetMethod::Pm, "no Power Management capability".into()),
                Some(_) if quirk_no_pm_reset(d) => no(
                    ResetMethod::Pm,
                    "the kernel marks AMD/ATI VGA devices off the root bus NO_PM_RESET".into(),
                ),
                Some(p) if p.no_soft_reset => no(
                    ResetMethod::Pm,
                    format!(
                        "PMCSR (PM cap at {:#04x}) No_Soft_Reset is set: D3hot->D0 keeps state",
                        p.offset
                    ),
                ),
                Some(_) => methods.push(ResetMethod::Pm),
            }
        }
    }

    // bus: not on a root bus, no subordinate bus, parent bridge exists, no
    // NO_BUS_RESET quirk, and alone on its bus.
    let peers = around.bus_peers(d);
    if d.on_root_bus() {
        no(
            ResetMethod::Bus,
            "on a root bus: no parent bridge to reset".into(),
        );
    } else if has_subordinate(around, d) {
        no(ResetMethod::Bus, "a bridge with a subordinate bus".into());
    } else if quirk_no_bus_reset(d) {
        no(ResetMethod::Bus, "the kernel's NO_BUS_RESET quirk".into());
    } else if !peers.is_empty() {
        no(
            ResetMethod::Bus,
            format!(
                "not alone on its bus (also {})",
                peers
                    .iter()
                    .map(|p| p.bdf.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    } else {
        methods.push(ResetMethod::Bus);
    }
    methods.sort();

    let (hot_reset, hot_reset_blocked) = match hot_reset(host, around, d) {
        Ok(h) => (Some(h), None),
        Err(why) => (None, Some(why)),
    };
    ResetAnalysis {
        methods,
        unavailable,
        config_unknown,
        hot_reset,
        hot_reset_blocked,
    }
}

/// VFIO hot reset of the parent bus: needs a parent bridge, and no device on the
/// bus or below it (nor the bridge) with NO_BUS_RESET (`pci_bus_resettable`).
fn hot_reset<'h>(host: &'h Host, around: &impl Around<'h>, d: &Device) -> Result<HotReset, String> {
    let Some(bridge) = d.parent() else {
        return Err("on a root bus: no bridge to reset".into());
    };
    if let Some(b) = host.device(bridge) {
        if quirk_no_bus_reset(b) {
            return Err(format!("bridge {bridge} has the NO_BUS_RESET quirk"));
        }
    }
    let affected = around.below(bridge);
    if let Some(q) = affected.iter().find(|o| quirk_no_bus_reset(o)) {
        return Err(format!(
            "{} below bridge {bridge} has the NO_BUS_RESET quirk",
            q.bdf
        ));
    }
    let mut groups: Vec<GroupId> = affected.iter().filter_map(|o| o.iommu_group).collect();
    groups.sort();
    groups.dedup();
    Ok(HotReset {
        bridge,
        slot_only: affected.iter().all(|o| o.bdf.slot() == d.bdf.slot()),
        affected: affected.iter().map(|o| o.bdf).collect(),
        groups,
    })
}
