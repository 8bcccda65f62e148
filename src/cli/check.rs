//! `passthru check [DEVICE...]`: the preflight verdict.

use super::list::{list_names, load_host};
use super::Global;
use clap::Args;
use passthru_iommu_groups::{
    check, CpuVendor, DeviceSpec, Finding, Host, IommuStatus, Report, Severity, Verdict,
};
use passthru_pci_ids::db::PciIdsIndex;
use std::process::ExitCode;

#[path = "report_style.rs"]
pub(super) mod report_style;

use report_style::{fit, pad, width, Style};

/// Arguments of `passthru check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Devices: a BDF (`0000:0b:00.0`, `0b:00.0`), a slot (`0b:00`) or `vendor:device`
    /// (`1002:7300`). None: every display device (class 03xx). Function 0 of a GPU
    /// brings the other functions of its slot.
    #[arg(value_name = "DEVICE")]
    pub devices: Vec<String>,
    /// `nfd`: print the Node Feature Discovery labels of every candidate device, as
    /// `passthru labels --stdout` does (docs/labels.md); takes no DEVICE.
    #[arg(long, value_name = "FORMAT", value_parser = ["nfd"], conflicts_with = "devices")]
    pub format: Option<String>,
}

/// The device specs of the command line.
pub(super) fn specs(a: &CheckArgs) -> anyhow::Result<Vec<DeviceSpec>> {
    Ok(a.devices
        .iter()
        .map(|s| s.parse::<DeviceSpec>())
        .collect::<Result<Vec<_>, _>>()?)
}

/// Check's exit status for a report: 1 when a device (or the host) fails, else 0.
pub(super) fn exit_status(report: &Report) -> u8 {
    u8::from(report.worst() == Verdict::Fail)
}

/// Give each device of `report` the `name` and `class_name` `list` gives it (pci.ids
/// is read in the CLI).
pub(super) fn name_devices(host: &Host, report: &mut Report, idx: Option<&PciIdsIndex<'_>>) {
    for d in &mut report.devices {
        if let Some(x) = host.device(d.bdf) {
            d.name = list_names::device_name(idx, x.vendor, x.device);
            d.class_name = passthru::report::class_name(idx, x.class);
        }
    }
}

/// The `--json` report of one host, its devices named; through a Value, so keys come
/// in name order, as check has always printed them.
///
/// # Errors
///
/// When the report does not serialize (it always does: plain data).
pub(super) fn json_report(
    host: &Host,
    report: &mut Report,
    idx: Option<&PciIdsIndex<'_>>,
) -> anyhow::Result<serde_json::Value> {
    name_devices(host, report, idx);
    Ok(serde_json::to_value(&*report)?)
}

/// Run `passthru check`. Exit 1 when a device (or the host: no IOMMU) fails. Over
/// several roots (`--root` repeated, `--roots-dir`): the fleet report.
pub fn run(g: &Global, a: &CheckArgs) -> anyhow::Result<ExitCode> {
    if a.format.as_deref() == Some("nfd") {
        out!("{}", super::labels::feature_file(g, None)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if super::fleet::is_fleet(g) {
        return super::fleet::check(g, a);
    }
    let specs = specs(a)?;
    let host = load_host(g)?;
    let mut report = check(&host, &specs)?;
    let code = ExitCode::from(exit_status(&report));
    let names = list_names::load(&g.root);
    let idx = list_names::index(names.db.as_ref());
    if g.json {
        let v = json_report(&host, &mut report, idx.as_ref())?;
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(code);
    }

    let st = Style::detect();
    let sev = |s: Severity| match s {
        Severity::Fail => st.fail("FAIL"),
        Severity::Warn => st.warn("warn"),
        Severity::Info => st.dim("info"),
    };
    let verdict = |v: Verdict| match v {
        Verdict::Fail => st.fail(&pad("FAIL", 4)),
        Verdict::Warn => st.warn(&pad("WARN", 4)),
        Verdict::Pass => st.pass(&pad("PASS", 4)),
    };
    let print_finding = |f: &Finding| {
        outln!(
            "  {}  {}  {}",
            sev(f.severity),
            pad(f.code.name(), 18),
            f.message
        )?;
        for e in &f.evidence {
            outln!("        {}", st.dim(&format!("- {e}")))?;
        }
        std::io::Result::Ok(())
    };

    let h = &report.host;
    outln!(
        "{} {} CPU, IOMMU {}{}, kernel {}",
        st.bold("Host:"),
        match h.cpu_vendor {
            CpuVendor::Amd => "AMD",
            CpuVendor::Intel => "Intel",
            CpuVendor::Other => "other",
        },
        if h.iommu == IommuStatus::Enabled {
            st.pass("enabled")
        } else {
            st.fail("disabled")
        },
        if host.iommu.units.is_empty() {
            String::new()
        } else {
            format!(" ({})", host.iommu.units.join(", "))
        },
        h.kernel.as_deref().unwrap_or("unknown"),
    )?;
    if let Some(c) = &h.cmdline {
        // The whole line is in --json; here it fits the terminal.
        outln!("  cmdline: {}", fit(c, width().saturating_sub(11).max(20)))?;
    }
    for f in &h.findings {
        print_finding(f)?;
    }
    outln!()?;
    if report.devices.is_empty() {
        outln!(
            "No display device (class 03xx) found: name the devices to check, e.g. `passthru check 0b:00`."
        )?;
        return Ok(code);
    }
    // DEVICE, ID, GROUP, RESET and VERDICT take 52 columns with their gaps; NAME the rest.
    let name_w = width().saturating_sub(52).max(12);
    outln!(
        "{}",
        st.bold(&format!(
            "{}  {}  {}  {}  {}  VERDICT",
            pad("DEVICE", 12),
            pad("ID", 9),
            pad("NAME", name_w),
            pad("GROUP", 5),
            pad("RESET", 12)
        ))
    )?;
    for d in &report.devices {
        let dev = host.device(d.bdf);
        let name = dev
            .and_then(|x| list_names::device_name(idx.as_ref(), x.vendor, x.device))
            .unwrap_or_default();
        let name = fit(&name, name_w);
        let resets = d
            .reset_methods
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(",");
        outln!(
            "{}  {}  {}  {}  {}  {}",
            d.bdf,
            pad(&format!("{}:{}", d.vendor_id, d.device_id), 9),
            pad(&name, name_w),
            pad(&d.iommu_group.map_or("-".to_string(), |x| x.to_string()), 5),
            pad(
                &fit(if resets.is_empty() { "none" } else { &resets }, 12),
                12
            ),
            verdict(d.verdict)
        )?;
    }
    for d in &report.devices {
        if d.findings.is_empty() {
            continue;
        }
        outln!()?;
        outln!("{} {}", st.bold(&d.bdf.to_string()), verdict(d.verdict))?;
        for f in &d.findings {
            print_finding(f)?;
        }
    }
    Ok(code)
}
