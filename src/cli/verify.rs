//! `passthru verify`: open the device through VFIO as a VMM would.
//!
//! `--bind` and `--bind-group` write `driver_override`, `unbind` and `drivers_probe`:
//! refused (exit 2) unless `--root` is the live `/`. `--bind-group` lists the peers it
//! would unbind and refuses peers in use (a mounted disk, an interface that is up, a
//! display on its driver) unless `--force`. Every input is checked before that.

use super::Global;
use anyhow::bail;
use anyhow::Context;
use clap::{Args, ValueEnum};
use passthru_pci_ids::{Bdf, Slot};
use passthru_vfio_core::verify::{
    self, ApiChoice, Severity, VerifyCode, VerifyOptions, VerifyReport,
};
use passthru_vfio_core::{bind, host, RealSys, SysfsRoot};
use std::path::Path;
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
    /// The device: a PCI address (`0000:0b:00.0`, `0b:00.0`), a slot with a single
    /// function (`00:02`), or a `vendor:device` id that one device has (`1af4:1042`).
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
    #[arg(long, value_name = "UUID", value_parser = parse_uuid)]
    pub vf_token: Option<String>,
    /// With --bind-group: unbind peers even when they are in use.
    #[arg(long, requires = "bind_group")]
    pub force: bool,
}

/// A UUID as the kernel's `uuid_parse()` (lib/uuid.c) takes it for the VF token:
/// 36 characters, hex digits in groups of 8-4-4-4-12 joined by `-`.
fn parse_uuid(s: &str) -> Result<String, String> {
    let ok = s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hex digits)"
        ))
    }
}

/// The functions under `root`'s `sys/bus/pci/devices`, sorted.
fn functions(root: &Path) -> Vec<Bdf> {
    let mut out: Vec<Bdf> = std::fs::read_dir(root.join("sys/bus/pci/devices"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// One function for DEVICE in the forms the help text names.
fn resolve(word: &str, root: &Path) -> anyhow::Result<Bdf> {
    if let Ok(b) = word.parse::<Bdf>() {
        return Ok(b);
    }
    let one = |hits: Vec<Bdf>, what: String| -> anyhow::Result<Bdf> {
        match hits.as_slice() {
            [] => bail!(
                "DEVICE {word:?}: no PCI device {what} under {}",
                root.join("sys/bus/pci/devices").display()
            ),
            [b] => Ok(*b),
            many => {
                let l: Vec<String> = many.iter().map(Bdf::to_string).collect();
                bail!(
                    "DEVICE {word:?}: {what} matches {} functions ({}); name one by address",
                    many.len(),
                    l.join(", ")
                )
            }
        }
    };
    if let Ok(slot) = word.parse::<Slot>() {
        let hits = functions(root)
            .into_iter()
            .filter(|b| b.slot() == slot)
            .collect();
        return one(hits, format!("at slot {slot}"));
    }
    if let Some((v, d)) = word.split_once(':') {
        let hex = |x: &str| {
            (x.len() == 4)
                .then(|| u16::from_str_radix(x, 16).ok())
                .flatten()
        };
        if let (Some(v), Some(d)) = (hex(v), hex(d)) {
            let hits = functions(root)
                .into_iter()
                .filter(|b| host::sysfs_ids(root, *b) == Some((v, d)))
                .collect();
            return one(hits, format!("with id {v:04x}:{d:04x}"));
        }
    }
    bail!("DEVICE {word:?} is not a PCI address (0000:0b:00.0, 0b:00.0), a slot (00:02) or a vendor:device id (1af4:1042)")
}

/// Before any write: the peers `--bind-group` would unbind, listed on standard error,
/// refused when in use (unless `--force`); then the live-root rule for any bind.
fn check_binding(root: &Path, bdf: Bdf, a: &VerifyArgs) -> anyhow::Result<()> {
    if a.bind_group {
        let peers: Vec<_> = match host::iommu_group(root, bdf) {
            Ok(g) => host::blockers(root, g)
                .with_context(|| format!("listing IOMMU group {g}"))?
                .into_iter()
                .filter(|p| p.bdf != bdf)
                .collect(),
            Err(_) => Vec::new(), // no group: verify reports it, nothing to unbind
        };
        let mut busy = Vec::new();
        for p in &peers {
            let why = bind::in_use(root, p.bdf);
            eprintln!(
                "passthru: --bind-group unbinds {} from {} for the check (restored afterwards){}",
                p.bdf,
                if p.driver.is_empty() {
                    "(none)"
                } else {
                    &p.driver
                },
                if why.is_empty() {
                    String::new()
                } else {
                    format!("; in use: {}", why.join("; "))
                }
            );
            if !why.is_empty() {
                busy.push(format!("{} ({}: {})", p.bdf, p.driver, why.join("; ")));
            }
        }
        if !busy.is_empty() && !a.force {
            bail!(
                "--bind-group: refusing to unbind peers in use: {}. Unbinding takes them from the host while the check runs; free them first, or pass --force",
                busy.join(", ")
            );
        }
    }
    if a.bind || a.bind_group {
        if let Err(why) = bind::live_root(root) {
            bail!("--bind writes driver_override, unbind and drivers_probe under {}: refused, {why}. Run it on the host itself with --root /", root.join("sys/bus/pci").display());
        }
    }
    Ok(())
}

/// Run `passthru verify`.
pub fn run(g: &Global, a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let bdf = resolve(&a.device, &g.root)?;
    check_binding(&g.root, bdf, a)?;
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
    // The `name` `list` gives it (pci.ids is read here, not in the library).
    if let (Some(v), Some(d)) = (report.vendor_id, report.device_id) {
        let names = super::list::list_names::load(&g.root);
        let idx = super::list::list_names::index(names.db.as_ref());
        report.name = super::list::list_names::device_name(idx.as_ref(), v, d);
    }
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
            VerifyCode::NotVfioPci => f
                .message
                .push_str("; rerun with --bind to bind it temporarily"),
            VerifyCode::GroupNotViable => f.message.push_str(
                "; `passthru verify --bind --bind-group` binds the group's devices for the check",
            ),
            _ => {}
        }
    }
}

fn human(r: &VerifyReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let group = match r.iommu_group {
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
    use passthru_vfio_core::verify::Finding;

    fn report(codes: &[VerifyCode]) -> VerifyReport {
        let mut r = VerifyReport::new("0000:0b:00.0".parse().unwrap());
        r.set_group(20);
        r.findings = codes
            .iter()
            .map(|&code| Finding::new(code, Severity::Fail, "from the library"))
            .collect();
        r
    }

    // The flags live in the CLI's advice, not in vfio-core's messages.
    #[test]
    fn flag_advice_is_added_by_the_cli_to_the_two_findings_it_fixes() {
        let mut r = report(&[
            VerifyCode::NotVfioPci,
            VerifyCode::GroupNotViable,
            VerifyCode::DmaMap,
        ]);
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
