//! Carry the preflight verdicts of `passthru-iommu-groups` into the plan's warnings.
//!
//! Every warning or failure is carried (`reset-bug`, `no-reset`, `group-shared`,
//! `acs-missing`, `boot-vga`, `iommu-off`, ...), prefixed with the device address,
//! except the ones the generated configuration itself resolves: `host-driver` (the
//! vfio-pci ids and softdeps take the device from its driver) and the informational
//! findings (`companion-function` is handled by slot expansion).

use crate::model::{ConfigCode, Warning};
use passthru_iommu_groups::{Code, Report, Severity};

/// The verdict findings worth showing next to a generated configuration.
pub fn warnings(report: &Report) -> Vec<Warning> {
    let mut out = Vec::new();
    for f in &report.host.findings {
        if f.severity >= Severity::Warn {
            out.push(f.clone().map_code(ConfigCode::Check));
        }
    }
    for d in &report.devices {
        for f in &d.findings {
            let host_wide = report
                .host
                .findings
                .iter()
                .any(|h| h.code == f.code && h.message == f.message);
            if f.severity >= Severity::Warn && f.code != Code::HostDriver && !host_wide {
                let mut w = f.clone().map_code(ConfigCode::Check);
                w.message = format!("{}: {}", d.bdf, f.message);
                if !out.contains(&w) {
                    out.push(w);
                }
            }
        }
    }
    out
}

/// Whether a requested device fails for a reason the generated host configuration does
/// not fix (the IOMMU being off is what the kernel parameters are for).
pub fn fails_after_config(report: &Report) -> bool {
    report.devices.iter().any(|d| {
        d.findings.iter().any(|f| {
            f.severity == Severity::Fail && !matches!(f.code, Code::IommuOff | Code::NoIommuGroup)
        })
    })
}
