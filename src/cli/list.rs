//! `passthru list`: IOMMU groups and their devices, with names and drivers.

use super::check::report_style::{fit, pad, width, Style};
use super::Global;
use anyhow::Context;
use clap::Args;
use passthru::report::{ListDevice, ListGroup, ListReport};
use passthru_iommu_groups::{system_path, Device, Host, Note, Stage};
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
        eprintln!("passthru: note: {}: {}", system_path(&n.path), n.message);
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
    let dev_out = |d: &Device| ListDevice::of(&host, d, idx.as_ref());
    let wanted = |d: &&Device| {
        a.slot.is_none_or(|f| f.matches(d.bdf))
            && a.ids.is_none_or(|f| f.matches(d.vendor, d.device, d.class))
    };
    let filtered = a.slot.is_some() || a.ids.is_some();
    let groups: Vec<ListGroup> = host
        .groups
        .iter()
        .map(|(id, group)| {
            let devices = group
                .devices
                .iter()
                .filter_map(|b| host.devices.get(b))
                .filter(wanted)
                .map(dev_out)
                .collect();
            ListGroup::new(id.0, group.noiommu, devices)
        })
        // A filter leaves out the groups it empties.
        .filter(|gr| !filtered || !gr.devices.is_empty())
        .collect();
    let ungrouped: Vec<ListDevice> = host
        .devices
        .values()
        .filter(|d| {
            d.iommu_group
                .is_none_or(|gid| !host.groups.contains_key(&gid))
        })
        .filter(wanted)
        .map(dev_out)
        .collect();
    let out = ListReport::new(&host, groups, ungrouped, names.source.clone());
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
    let line = |d: &ListDevice| {
        outln!(
            "  {}  {}  {}:{}  {}  {}",
            d.bdf,
            pad(
                &fit(
                    &d.class_name.clone().unwrap_or_else(|| d.class.to_string()),
                    16
                ),
                16
            ),
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
