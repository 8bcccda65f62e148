//! `passthru verify`: open the device through VFIO as a VMM would.

use super::Global;
use anyhow::Context;
use clap::{Args, ValueEnum};
use passthru_pci_ids::Bdf;
use passthru_vfio_core::verify::{self, ApiChoice, Severity, VerifyOptions, VerifyReport};
use passthru_vfio_core::{bind, RealSys, SysfsRoot};
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

/// Name files as system paths (`/sys/bus/pci/...`) whatever the root, so a
/// snapshot's report reads as the live one.
fn system_paths(r: &mut VerifyReport, root: &std::path::Path) {
    let prefix = root.display().to_string();
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return;
    }
    let fix = |s: &mut String| {
        if s.contains(prefix) {
            *s = s.replace(&format!("{prefix}/"), "/");
        }
    };
    fix(&mut r.dma_map);
    for f in &mut r.findings {
        fix(&mut f.message);
    }
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
    let result = verify::verify(&sys, &SysfsRoot::new(&g.root), &opts);
    // Guards dropped without a log of their own (none in verify today) record failed
    // driver restores here; the library prints nothing, so the CLI says it.
    for f in bind::take_restore_failures() {
        eprintln!(
            "passthru: could not restore the driver of {}: {}",
            f.bdf,
            verify::error_chain(&f.error)
        );
    }
    let mut report = result.with_context(|| format!("verify {bdf}"))?;
    advise(&mut report);
    system_paths(&mut report, &g.root);
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

/// The CLI's own advice on findings the library words without command-line flags.
fn advise(r: &mut VerifyReport) {
    for f in &mut r.findings {
        match f.code {
            "not-vfio-pci" => f
                .message
                .push_str("; rerun with --bind to bind it temporarily"),
            "group-not-viable" => f.message.push_str(
                "; `passthru verify --bind --bind-group` binds the group's devices for the check",
            ),
            _ => {}
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use passthru_vfio_core::verify::{Api, Finding, ResetReport};

    fn report(codes: &[&'static str]) -> VerifyReport {
        VerifyReport {
            bdf: "0000:0b:00.0".into(),
            api: Api::Container,
            group: Some(20),
            viable: false,
            dma_map: "not attempted".into(),
            iova_ranges: Vec::new(),
            reset: ResetReport::default(),
            findings: codes
                .iter()
                .map(|&code| Finding {
                    code,
                    severity: Severity::Fail,
                    message: "from the library".into(),
                })
                .collect(),
        }
    }

    // The flags live in the CLI's advice, not in vfio-core's messages.
    #[test]
    fn flag_advice_is_added_by_the_cli_to_the_two_findings_it_fixes() {
        let mut r = report(&["not-vfio-pci", "group-not-viable", "dma-map"]);
        advise(&mut r);
        let m: Vec<&str> = r.findings.iter().map(|f| f.message.as_str()).collect();
        assert!(
            m[0].ends_with("rerun with --bind to bind it temporarily"),
            "{}",
            m[0]
        );
        assert!(m[1].contains("--bind --bind-group"), "{}", m[1]);
        assert_eq!(m[2], "from the library");
    }
}
