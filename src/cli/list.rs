//! `passthru list`: IOMMU groups and their devices, with names and drivers.

use super::check::report_style::{pad, Style};
use super::Global;
use anyhow::Context;
use clap::Args;
use passthru_iommu_groups::{Device, Host, Note, Stage};
use serde::Serialize;
use std::process::ExitCode;

#[path = "list_names.rs"]
pub(super) mod list_names;

/// Arguments of `passthru list`.
#[derive(Debug, Args)]
pub struct ListArgs {}

#[derive(Serialize)]
struct ListOut {
    iommu: &'static str,
    groups: Vec<GroupOut>,
    ungrouped: Vec<DevOut>,
    /// Which pci.ids database gave the names.
    pci_ids: list_names::NamesSource,
}

#[derive(Serialize)]
struct GroupOut {
    id: u32,
    devices: Vec<DevOut>,
}

#[derive(Serialize)]
struct DevOut {
    bdf: String,
    vendor_id: String,
    device_id: String,
    class: String,
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
pub fn run(g: &Global, _a: &ListArgs) -> anyhow::Result<ExitCode> {
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
        name: list_names::device_name(idx.as_ref(), d.vendor, d.device),
        driver: d.driver.clone(),
    };
    let groups: Vec<GroupOut> = host
        .groups
        .iter()
        .map(|(id, group)| GroupOut {
            id: id.0,
            devices: group
                .devices
                .iter()
                .filter_map(|b| host.devices.get(b))
                .map(dev_out)
                .collect(),
        })
        .collect();
    let ungrouped: Vec<DevOut> = host
        .devices
        .values()
        .filter(|d| {
            d.iommu_group
                .is_none_or(|gid| !host.groups.contains_key(&gid))
        })
        .map(dev_out)
        .collect();
    let out = ListOut {
        iommu: if host.iommu.active() {
            "enabled"
        } else {
            "disabled"
        },
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
    let line = |d: &DevOut| {
        outln!(
            "  {}  {}  {}:{}  {}  {}",
            d.bdf,
            d.class,
            d.vendor_id,
            d.device_id,
            pad(d.name.as_deref().unwrap_or("(unknown)"), 60),
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
