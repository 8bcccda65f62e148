//! `passthru list`: IOMMU groups and their devices, with names and drivers.

use super::check::report_style::{fit, pad, width, Style};
use super::Global;
use anyhow::Context;
use clap::Args;
use passthru_iommu_groups::{Device, Host, Note, Stage};
use serde::Serialize;
use std::process::ExitCode;

#[path = "list_filter.rs"]
mod list_filter;
#[path = "list_names.rs"]
pub(super) mod list_names;

use list_filter::{IdFilter, SlotFilter};

/// Arguments of `passthru list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only devices at these addresses, as lspci takes them:
    /// `[[[[domain]:]bus]:][device][.[func]]`, hex, an empty part or `*` for any.
    #[arg(short = 's', value_name = "SLOT")]
    pub slot: Option<SlotFilter>,
    /// Only devices with these ids, as lspci takes them:
    /// `[vendor]:[device][:class[:prog-if]]`, hex, an empty part for any.
    #[arg(short = 'd', value_name = "IDS")]
    pub ids: Option<IdFilter>,
}

#[derive(Serialize)]
struct ListOut {
    iommu: &'static str,
    /// The IOMMU units (`dmar0`, `ivhd0`, ...), as the human output names them.
    iommu_units: Vec<String>,
    groups: Vec<GroupOut>,
    ungrouped: Vec<DevOut>,
    /// Which pci.ids database gave the names.
    pci_ids: list_names::NamesSource,
}

#[derive(Serialize)]
struct GroupOut {
    id: u32,
    /// A group VFIO made in its no-IOMMU mode: no IOMMU stands behind it.
    noiommu: bool,
    devices: Vec<DevOut>,
}

#[derive(Serialize)]
struct DevOut {
    bdf: String,
    vendor_id: String,
    device_id: String,
    class: String,
    /// The class's name from pci.ids (subclass, else base class).
    class_name: Option<String>,
    name: Option<String>,
    driver: Option<String>,
}

/// Load the host under `--root`, printing the loader's notes to stderr.
pub(super) fn load_host(g: &Global) -> anyhow::Result<Host> {
    let host = Host::load(&g.root)
        .with_context(|| format!("reading the host under {}", g.root.display()))?;
    print_notes(&host);
    Ok(host)
}

/// Print the loader's notes to stderr.
fn print_notes(host: &Host) {
    let notes: &[Note] = &host.notes;
    // A non-root reader gets 64-byte config files for every device: say it once.
    let short = notes
        .iter()
        .filter(|n| n.message.starts_with("only 64 bytes"))
        .count();
    for n in notes {
        if short > 1 && n.message.starts_with("only 64 bytes") {
            continue;
        }
        eprintln!("passthru: note: {}: {}", n.path.display(), n.message);
    }
    if short > 1 {
        eprintln!(
            "passthru: note: {short} devices: config readable only to 64 bytes ({}): \
             FLR, PM reset and ACS unknown",
            host.root_advice()
        );
    }
}

/// Run `passthru list`.
///
/// Reads only what it prints (the host model's [`Stage::Inventory`]): ids, class,
/// driver and group.
pub fn run(g: &Global, a: &ListArgs) -> anyhow::Result<ExitCode> {
    let host = Host::load_stage(&g.root, Stage::Inventory)
        .with_context(|| format!("reading the host under {}", g.root.display()))?;
    print_notes(&host);
    let names = list_names::load(&g.root);
    let idx = list_names::index(names.db.as_ref());
    let dev_out = |d: &Device| DevOut {
        bdf: d.bdf.to_string(),
        vendor_id: d.vendor.to_string(),
        device_id: d.device.to_string(),
        class: d.class.to_string(),
        class_name: idx.as_ref().and_then(|i| {
            i.subclass(d.class.class, d.class.subclass)
                .or_else(|| i.class(d.class.class))
                .map(str::to_string)
        }),
        name: list_names::device_name(idx.as_ref(), d.vendor, d.device),
        driver: d.driver.clone(),
    };
    let wanted = |d: &&Device| {
        a.slot.is_none_or(|f| f.matches(d.bdf))
            && a.ids.is_none_or(|f| f.matches(d.vendor, d.device, d.class))
    };
    let filtered = a.slot.is_some() || a.ids.is_some();
    let groups: Vec<GroupOut> = host
        .groups
        .iter()
        .map(|(id, group)| GroupOut {
            id: id.0,
            noiommu: group.noiommu,
            devices: group
                .devices
                .iter()
                .filter_map(|b| host.devices.get(b))
                .filter(wanted)
                .map(dev_out)
                .collect(),
        })
        // A filter leaves out the groups it empties.
        .filter(|gr| !filtered || !gr.devices.is_empty())
        .collect();
    let ungrouped: Vec<DevOut> = host
        .devices
        .values()
        .filter(|d| {
            d.iommu_group
                .is_none_or(|gid| !host.groups.contains_key(&gid))
        })
        .filter(wanted)
        .map(dev_out)
        .collect();
    let out = ListOut {
        iommu: if host.iommu.active() {
            "enabled"
        } else {
            "disabled"
        },
        iommu_units: host.iommu.units.clone(),
        groups,
        ungrouped,
        pci_ids: names.source.clone(),
    };
    if g.json {
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let st = Style::detect();
    if host.iommu.active() {
        outln!(
            "IOMMU {}: {} groups{}",
            st.pass("enabled"),
            out.groups.len(),
            if host.iommu.units.is_empty() {
                String::new()
            } else {
                format!(" ({})", host.iommu.units.join(", "))
            }
        )?;
    } else if !out.groups.is_empty() {
        // Only VFIO's no-IOMMU groups (an IOMMU would have made the state active).
        outln!(
            "IOMMU {}: {} VFIO no-IOMMU groups (vfio.enable_unsafe_noiommu_mode): no DMA \
             isolation (run `passthru check` for what to enable)",
            st.fail("disabled"),
            out.groups.len()
        )?;
    } else {
        outln!(
            "IOMMU {}: no groups (run `passthru check` for what to enable)",
            st.fail("disabled")
        )?;
    }
    // BDF, class and ids take 47 columns with their gaps, the driver column its
    // longest name; the name the rest.
    let driver_w = out
        .groups
        .iter()
        .flat_map(|g| &g.devices)
        .chain(&out.ungrouped)
        .map(|d| d.driver.as_deref().map_or(1, |x| x.chars().count()))
        .max()
        .unwrap_or(1);
    let name_w = width().saturating_sub(47 + 2 + driver_w).max(12);
    let line = |d: &DevOut| {
        outln!(
            "  {}  {}  {}:{}  {}  {}",
            d.bdf,
            pad(&fit(d.class_name.as_deref().unwrap_or(&d.class), 16), 16),
            d.vendor_id,
            d.device_id,
            pad(
                &fit(d.name.as_deref().unwrap_or("(unknown)"), name_w),
                name_w
            ),
            match &d.driver {
                Some(x) if x == "vfio-pci" => st.pass(x),
                Some(x) => x.clone(),
                None => st.dim("-"),
            }
        )
    };
    for gr in &out.groups {
        outln!("{}", st.bold(&format!("IOMMU group {}", gr.id)))?;
        for d in &gr.devices {
            line(d)?;
        }
    }
    if !out.ungrouped.is_empty() {
        outln!(
            "{}",
            st.bold(if host.iommu.active() {
                "No IOMMU group"
            } else {
                "Devices"
            })
        )?;
        for d in &out.ungrouped {
            line(d)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
