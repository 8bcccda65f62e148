//! `passthru trial`: prove a passthrough by doing it. Bind the device's functions
//! (and their IOMMU group peers) to vfio-pci, boot a throwaway guest with them
//! several times, and judge each boot from the guest's own report.
//!
//! - [`initramfs`]: the guest's initramfs (cpio written here; passthru itself as
//!   `/init`; the driver's modules resolved through `modules.alias`/`modules.dep`).
//! - [`guest`]: what `/init` does inside the guest.
//! - [`protocol`]: the framed records the guest sends over its own serial port.
//! - [`qemu`]: the VMM command lines.
//! - [`run`]: the host side: binding, the boot loop, timeouts, signals, cleanup.
//!
//! docs/trial.md explains the design and its sources.

pub mod guest;
pub mod initramfs;
pub mod protocol;
pub mod qemu;
pub mod run;

use passthru_iommu_groups::{Device, Host};
use passthru_pci_ids::Bdf;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A boot's (or the whole trial's) verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TrialVerdict {
    /// Every function was seen by the guest and its driver bound without failing.
    #[serde(rename = "trial-ok")]
    Ok,
    /// A function was seen but its driver did not bind or reported a failure.
    #[serde(rename = "trial-driver-failed")]
    DriverFailed,
    /// Worked on an earlier boot, fails (or reads all ones) on a later one, or the
    /// host reads the device as all ones after a boot.
    #[serde(rename = "trial-reset-failed")]
    ResetFailed,
    /// The guest did not see a function (or it read all ones on the first boot),
    /// or the VMM could not start with it.
    #[serde(rename = "trial-not-visible")]
    NotVisible,
    /// The guest did not finish before the timeout and was killed.
    #[serde(rename = "trial-timeout")]
    Timeout,
    /// The guest kernel crashed (an oops, a double fault, a panic) before its init
    /// reported: the boot never reached the device, so it says nothing about it; a
    /// crash after an earlier good boot is not taken for a reset failure.
    #[serde(rename = "trial-guest-crashed")]
    GuestCrashed,
}

impl TrialVerdict {
    /// The verdict's stable name (`trial-ok`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TrialVerdict::Ok => "trial-ok",
            TrialVerdict::DriverFailed => "trial-driver-failed",
            TrialVerdict::ResetFailed => "trial-reset-failed",
            TrialVerdict::NotVisible => "trial-not-visible",
            TrialVerdict::Timeout => "trial-timeout",
            TrialVerdict::GuestCrashed => "trial-guest-crashed",
        }
    }
}

/// One function the trial passes through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Function {
    /// Its host address.
    pub bdf: Bdf,
    /// Vendor id, 4 lower-case hex digits.
    pub vendor: String,
    /// Device id, 4 lower-case hex digits.
    pub device: String,
    /// Its modalias, as the kernel gives it.
    pub modalias: String,
    /// Modules whose alias matches it (what the guest loads for it).
    pub modules: Vec<String>,
    /// Its host driver before the trial.
    pub host_driver: Option<String>,
    /// Its BARs (0-5) and ROM (6) as the host sized them (`resource`), non-empty only.
    pub host_bars: Vec<protocol::GuestBar>,
}

impl Function {
    /// A function of `host`'s device `d`, with the modules `tree` has for it.
    pub fn of(d: &Device, tree: Option<&initramfs::ModTree>) -> Function {
        let modalias = initramfs::pci_modalias(d);
        Function {
            bdf: d.bdf,
            vendor: format!("{:04x}", d.vendor.0),
            device: format!("{:04x}", d.device.0),
            modules: tree.map(|t| t.matching(&modalias)).unwrap_or_default(),
            modalias,
            host_driver: d.driver.clone().filter(|x| x != "vfio-pci"),
            host_bars: d
                .resources
                .iter()
                .filter(|r| r.index <= 6 && r.size() > 0)
                .map(|r| protocol::GuestBar {
                    index: r.index,
                    size: r.size(),
                })
                .collect(),
        }
    }

    /// Whether a driver is expected to bind in the guest: a module matches it, or
    /// the host had a driver for it (built into the kernel then).
    pub fn expects_driver(&self) -> bool {
        !self.modules.is_empty() || self.host_driver.is_some()
    }
}

/// The functions passed through (the request with its companions) and what is
/// bound to vfio-pci for the trial (those plus their IOMMU group peers, bridges
/// left out), from the host model.
pub fn bind_set(host: &Host, functions: &[Bdf]) -> Vec<Bdf> {
    let mut out: Vec<Bdf> = functions.to_vec();
    for b in functions {
        let Some(g) = host.device(*b).and_then(|d| d.iommu_group) else {
            continue;
        };
        if let Some(group) = host.groups.get(&g) {
            for p in &group.devices {
                if host.device(*p).is_some_and(|d| !d.is_any_bridge()) {
                    out.push(*p);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What the host sees of a function between boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostSeen {
    /// The function.
    pub bdf: Bdf,
    /// `readable`, `all-ones` (the device does not answer) or `unreadable`.
    pub config: String,
    /// The kernel's reset methods, in the order it tries them (VFIO's reset uses
    /// the first that works).
    pub reset_method: Option<Vec<String>>,
    /// The power state.
    pub power_state: Option<String>,
    /// The upstream port's link: `up`/`down` (when it reports Data Link Layer
    /// Link Active), else its speed and width, or `unknown`.
    pub link: String,
    /// The bound driver.
    pub driver: Option<String>,
}

impl HostSeen {
    /// What `host` shows of `bdf`.
    pub fn of(host: &Host, bdf: Bdf) -> HostSeen {
        let d = host.device(bdf);
        let config = match d.and_then(|d| d.config.as_deref()) {
            Some(c) if c.len() >= 4 && c[..4] == [0xff; 4] => "all-ones",
            Some(c) if c.len() >= 4 => "readable",
            _ => "unreadable",
        };
        let link = d
            .and_then(|d| d.parent())
            .and_then(|p| host.device(p))
            .and_then(link_of)
            .unwrap_or_else(|| "unknown".into());
        HostSeen {
            bdf,
            config: config.into(),
            reset_method: d.and_then(|d| d.reset_method.clone()),
            power_state: d.and_then(|d| d.power_state.clone()),
            link,
            driver: d.and_then(|d| d.driver.clone()),
        }
    }
}

/// A port's link from its PCI Express capability (PCIe Base Spec: Link
/// Capabilities at +0x0c, bit 20 "Data Link Layer Link Active Reporting
/// Capable"; Link Status at +0x12, bits 3:0 speed, 9:4 width, 13 DLLLA).
fn link_of(port: &Device) -> Option<String> {
    let off = usize::from(port.facts.as_ref()?.pcie.as_ref()?.offset);
    let c = port.config.as_deref()?;
    let cap = u32::from_le_bytes(c.get(off + 0x0c..off + 0x10)?.try_into().ok()?);
    let st = u16::from_le_bytes(c.get(off + 0x12..off + 0x14)?.try_into().ok()?);
    if cap & (1 << 20) != 0 {
        return Some(if st & (1 << 13) != 0 { "up" } else { "down" }.into());
    }
    Some(format!("gen{} x{}", st & 0xf, (st >> 4) & 0x3f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use passthru_iommu_groups::fixture::{Fixture, FixtureDevice, IommuKind};
    use passthru_iommu_groups::CpuVendor;

    /// The offset of the PCI Express capability (id 0x10) in `c`.
    fn pcie_cap(c: &[u8]) -> usize {
        let mut p = usize::from(c[0x34]);
        while c[p] != 0x10 {
            p = usize::from(c[p + 1]);
        }
        p
    }

    /// A root port whose Link Capabilities/Status say `cap`/`status`, and a GPU behind it
    /// whose config reads `first_dword`.
    fn seen(cap: u32, status: u16, first_dword: [u8; 4]) -> HostSeen {
        let rp: Bdf = "00:1c.0".parse().unwrap();
        let gpu: Bdf = "01:00.0".parse().unwrap();
        let mut port = FixtureDevice::root_port(rp, 1).group(1);
        let off = pcie_cap(&port.config);
        port.config[off + 0x0c..off + 0x10].copy_from_slice(&cap.to_le_bytes());
        port.config[off + 0x12..off + 0x14].copy_from_slice(&status.to_le_bytes());
        let mut dev = FixtureDevice::gpu(gpu, 0x1002, 0x67df)
            .parent(rp)
            .group(2)
            .driver("vfio-pci")
            .reset_method("bus");
        dev.config[..4].copy_from_slice(&first_dword);
        let dir = tempfile::tempdir().unwrap();
        Fixture::new(CpuVendor::Amd, IommuKind::Amd)
            .device(port)
            .device(dev)
            .write(dir.path())
            .unwrap();
        HostSeen::of(&Host::load(dir.path()).unwrap(), gpu)
    }

    #[test]
    fn bind_set_adds_group_peers_but_not_bridges() {
        let rp: Bdf = "00:1c.0".parse().unwrap();
        let b = |s: &str| -> Bdf { s.parse().unwrap() };
        let dir = tempfile::tempdir().unwrap();
        // One group holding the port, a GPU, its audio and a second, unrelated GPU (a port
        // without ACS groups everything below it with itself).
        Fixture::new(CpuVendor::Amd, IommuKind::Amd)
            .device(FixtureDevice::root_port(rp, 1).group(2))
            .device(
                FixtureDevice::gpu(b("01:00.0"), 0x1002, 0x67df)
                    .parent(rp)
                    .group(2),
            )
            .device(
                FixtureDevice::hdmi_audio(b("01:00.1"), 0x1002, 0xaaf0)
                    .parent(rp)
                    .group(2),
            )
            .device(
                FixtureDevice::gpu(b("01:01.0"), 0x10de, 0x1b80)
                    .parent(rp)
                    .group(2),
            )
            .write(dir.path())
            .unwrap();
        let host = Host::load(dir.path()).unwrap();
        assert_eq!(
            bind_set(&host, &[b("0000:01:00.0"), b("0000:01:00.1")]),
            [b("0000:01:00.0"), b("0000:01:00.1"), b("0000:01:01.0")]
        );
    }

    #[test]
    fn host_seen_reads_config_reset_and_the_port_link() {
        // DLLLA reporting capable (Link Capabilities bit 20), link active (status bit 13).
        let s = seen(1 << 20, 1 << 13 | 0x3 | 16 << 4, [0x02, 0x10, 0xdf, 0x67]);
        assert_eq!(s.config, "readable");
        assert_eq!(s.link, "up");
        assert_eq!(s.reset_method, Some(vec!["bus".to_string()]));
        assert_eq!(s.driver.as_deref(), Some("vfio-pci"));
        let s = seen(1 << 20, 0, [0xff; 4]);
        assert_eq!((s.config.as_str(), s.link.as_str()), ("all-ones", "down"));
        // Without DLLLA reporting: speed and width from Link Status.
        let s = seen(0, 0x3 | 16 << 4, [0x02, 0x10, 0xdf, 0x67]);
        assert_eq!(s.link, "gen3 x16");
    }

    #[test]
    fn verdict_names_are_the_issue_s() {
        for (v, n) in [
            (TrialVerdict::Ok, "trial-ok"),
            (TrialVerdict::DriverFailed, "trial-driver-failed"),
            (TrialVerdict::ResetFailed, "trial-reset-failed"),
            (TrialVerdict::NotVisible, "trial-not-visible"),
            (TrialVerdict::GuestCrashed, "trial-guest-crashed"),
            (TrialVerdict::Timeout, "trial-timeout"),
        ] {
            assert_eq!(v.name(), n);
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(n));
        }
    }
}
