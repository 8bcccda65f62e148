//! `passthru verify`: open the device through VFIO as a VMM would.

use super::Global;
use anyhow::Context;
use clap::{Args, ValueEnum};
use passthru_pci_ids::Bdf;
use passthru_vfio_core::verify::{self, ApiChoice, Severity, VerifyOptions, VerifyReport};
use passthru_vfio_core::{RealSys, SysfsRoot};
use std::process::ExitCode;
use std::sync::Arc;

/// Which VFIO API to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApiArg {
    /// iommufd when the kernel offers it, else the container API.
    Auto,
    /// The legacy container/group API.
    Container,
    /// iommufd with the device cdev.
    Iommufd,
}

/// Arguments of `passthru verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The device, `0000:0b:00.0` or `0b:00.0`.
    #[arg(value_name = "DEVICE")]
    pub device: String,
    /// Temporarily bind the device to vfio-pci; its driver is restored afterwards.
    #[arg(long)]
    pub bind: bool,
    /// Also bind the device's IOMMU group peers that sit on host drivers (restored
    /// afterwards), making the group viable for the check; implies `--bind`.
    #[arg(long)]
    pub bind_group: bool,
    /// Also perform the reset and check the device comes back.
    #[arg(long)]
    pub reset: bool,
    /// VFIO API to use.
    #[arg(long, value_enum, default_value_t = ApiArg::Auto)]
    pub api: ApiArg,
    /// VF token (UUID) for an SR-IOV VF whose PF is bound to vfio-pci.
    #[arg(long, value_name = "UUID")]
    pub vf_token: Option<String>,
}

/// Run `passthru verify`.
pub fn run(g: &Global, a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let bdf: Bdf = a
        .device
        .parse()
        .map_err(|e| anyhow::anyhow!("DEVICE {:?} is not a PCI address: {e}", a.device))?;
    let mut opts = VerifyOptions::new(&g.root, bdf);
    opts.bind = a.bind || a.bind_group;
    opts.bind_peers = a.bind_group;
    opts.reset = a.reset;
    opts.vf_token = a.vf_token.clone();
    opts.api = match a.api {
        ApiArg::Auto => ApiChoice::Auto,
        ApiArg::Container => ApiChoice::Container,
        ApiArg::Iommufd => ApiChoice::Iommufd,
    };
    let sys = Arc::new(RealSys::new());
    let report = verify::verify(&sys, &SysfsRoot::new(&g.root), &opts)
        .with_context(|| format!("verify {bdf}"))?;
    if g.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        out!("{}", human(&report))?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn human(r: &VerifyReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let group = match r.group {
        Some(n) => format!(
            "IOMMU group {n} ({})",
            if r.viable { "viable" } else { "not viable" }
        ),
        None => "no IOMMU group".into(),
    };
    let api = match r.api {
        verify::Api::Container => "container",
        verify::Api::Iommufd => "iommufd",
    };
    let _ = writeln!(s, "{}  {group}  api {api}", r.bdf);
    let _ = writeln!(s, "  DMA map:       {}", r.dma_map);
    if !r.iova_ranges.is_empty() {
        let ranges: Vec<String> = r
            .iova_ranges
            .iter()
            .map(|[a, b]| format!("[{a:#x}-{b:#x}]"))
            .collect();
        let _ = writeln!(s, "  IOVA ranges:   {}", ranges.join(" "));
    }
    let _ = writeln!(
        s,
        "  device reset:  {}",
        if r.reset.device_reset { "yes" } else { "no" }
    );
    let hot = if r.reset.hot_reset_devices.is_empty() {
        "not possible".to_string()
    } else {
        format!("touches {}", r.reset.hot_reset_devices.join(", "))
    };
    let _ = writeln!(s, "  hot reset:     {hot}");
    if let Some(p) = &r.reset.performed {
        let _ = writeln!(s, "  reset done:    {p}");
    }
    for f in &r.findings {
        let sev = match f.severity {
            Severity::Fail => "FAIL",
            Severity::Warn => "warn",
            Severity::Info => "info",
        };
        let _ = writeln!(s, "  {sev} {}: {}", f.code, f.message);
    }
    let _ = writeln!(s, "verdict: {}", if r.passed() { "pass" } else { "FAIL" });
    s
}
