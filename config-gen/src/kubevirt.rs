//! KubeVirt: the `KubeVirt` custom resource's permitted host devices
//! (`spec.configuration.permittedHostDevices.pciHostDevices[]`) and a
//! `VirtualMachine`'s devices (`spec.template.spec.domain.devices.gpus[]` and
//! `hostDevices[]`), as YAML documents, for every function of every requested slot
//! (the GPU's HDMI audio and other companion functions included).
//!
//! Resource names (docs/kubevirt.md):
//! - an NVIDIA display function (vendor `10de`, class 03xx) is advertised by NVIDIA's
//!   kubevirt-gpu-device-plugin (the GPU Operator's sandbox device plugin) as
//!   `nvidia.com/<name>`, the name derived from the device's pci.ids name the way that
//!   plugin derives it (pkg/device_plugin/device_plugin.go, `getDeviceName`):
//!   upper-cased, `/` and `.` replaced by `_`, each run of white space replaced by `_`,
//!   every character other than letters, digits, `_` and `.` removed; the device id
//!   (lower-case hex) when pci.ids has no name. The plugin provides it, so
//!   `externalResourceProvider: true`.
//! - every other function is left to KubeVirt's own device plugin, under passthru's
//!   name `pci.passthru/VVVV_DDDD` (upper-case hex vendor and device ids).

use crate::guest::GuestSet;
use crate::model::DeviceFacts;
use passthru_pci_ids::{DeviceId, VendorId};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The resource-name domain of NVIDIA's kubevirt-gpu-device-plugin.
pub const NVIDIA_DOMAIN: &str = "nvidia.com";

/// The resource-name domain passthru uses for devices KubeVirt's own plugin serves.
pub const OWN_DOMAIN: &str = "pci.passthru";

/// The resource name NVIDIA's kubevirt-gpu-device-plugin gives a device whose pci.ids
/// name is `name` (`None`: not in pci.ids, then the device id).
pub fn nvidia_resource_name(name: Option<&str>, device: DeviceId) -> String {
    let Some(n) = name else {
        return format!("{NVIDIA_DOMAIN}/{device}");
    };
    let mut s = String::new();
    let mut in_space = false;
    // Go's `strings.ToUpper` then `\\s+` (ASCII white space) then `[^a-zA-Z0-9_.]`:
    // non-ASCII letters end up removed either way.
    for c in n.trim().chars().map(|c| c.to_ascii_uppercase()) {
        if c.is_ascii_whitespace() {
            if !in_space {
                s.push('_');
            }
            in_space = true;
            continue;
        }
        in_space = false;
        match c {
            '/' | '.' => s.push('_'),
            c if c.is_ascii_alphanumeric() || c == '_' => s.push(c),
            _ => {}
        }
    }
    format!("{NVIDIA_DOMAIN}/{s}")
}

/// How one function is permitted and requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// `VVVV:DDDD`, upper-case hex.
    pub selector: String,
    /// The extended resource name.
    pub resource: String,
    /// Whether an external device plugin (NVIDIA's) advertises it.
    pub external: bool,
}

/// The permit for `d`.
pub fn permit(d: &DeviceFacts, names: &BTreeMap<(VendorId, DeviceId), String>) -> Permit {
    let selector = format!(
        "{}:{}",
        d.vendor.to_string().to_uppercase(),
        d.device.to_string().to_uppercase()
    );
    if d.vendor == VendorId::NVIDIA && d.class.is_display() {
        let name = names.get(&(d.vendor, d.device)).map(String::as_str);
        Permit {
            selector,
            resource: nvidia_resource_name(name, d.device),
            external: true,
        }
    } else {
        Permit {
            resource: format!("{OWN_DOMAIN}/{}", selector.replace(':', "_")),
            selector,
            external: false,
        }
    }
}

/// A YAML double-quoted scalar (the names passthru writes hold no `"` or `\`; both are
/// escaped all the same).
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `# <bdf> <vendor>:<device> <name>`: what a line is about.
fn about(d: &DeviceFacts, names: &BTreeMap<(VendorId, DeviceId), String>) -> String {
    match names.get(&(d.vendor, d.device)) {
        Some(n) => format!("{} {}:{} {n}", d.bdf, d.vendor, d.device),
        None => format!("{} {}:{}", d.bdf, d.vendor, d.device),
    }
}

/// The guest-side name of a function's device entry (unique per VM).
fn entry_name(d: &DeviceFacts) -> String {
    format!(
        "pt-{:04x}-{:02x}-{:02x}-{:x}",
        d.bdf.domain, d.bdf.bus, d.bdf.device, d.bdf.function
    )
}

/// The KubeVirt documents for every set: one `KubeVirt` fragment permitting every
/// vendor:device of every set, then one `VirtualMachine` per set.
pub fn render(sets: &[GuestSet<'_>], names: &BTreeMap<(VendorId, DeviceId), String>) -> String {
    let mut s = String::new();
    s.push_str(
        "# KubeVirt: merge spec.configuration.permittedHostDevices into the cluster's KubeVirt\n\
         # object (kubectl edit kubevirt -n kubevirt kubevirt); every function must be bound to\n\
         # vfio-pci on each node that offers it. Resource names: docs/kubevirt.md.\n",
    );
    s.push_str(
        "---\napiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata:\n  name: kubevirt\n  namespace: kubevirt\nspec:\n  configuration:\n    permittedHostDevices:\n      pciHostDevices:\n",
    );
    let mut seen: Vec<String> = Vec::new();
    for d in sets.iter().flat_map(|set| set.functions.iter()) {
        let p = permit(d, names);
        if seen.contains(&p.selector) {
            continue;
        }
        seen.push(p.selector.clone());
        let who = if p.external {
            "advertised by NVIDIA's kubevirt-gpu-device-plugin (resource named from pci.ids)"
        } else {
            "advertised by KubeVirt's own device plugin (passthru's resource name)"
        };
        let _ = writeln!(s, "      # {}: {who}", about(d, names));
        let _ = writeln!(s, "      - pciVendorSelector: {}", q(&p.selector));
        let _ = writeln!(s, "        resourceName: {}", q(&p.resource));
        if p.external {
            s.push_str("        externalResourceProvider: true\n");
        }
    }
    for (i, set) in sets.iter().enumerate() {
        let slots: Vec<String> = set.slots.iter().map(|x| x.to_string()).collect();
        let _ = write!(
            s,
            "# guest {}: {}: merge spec.template.spec.domain.devices into the VM; one entry per\n\
             # function, every function of the slot (GPUs under gpus, the rest under hostDevices)\n",
            i + 1,
            slots.join(" ")
        );
        let _ = write!(
            s,
            "---\napiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: passthru-guest-{}\nspec:\n  template:\n    spec:\n      domain:\n        devices:\n",
            i + 1
        );
        let (gpus, others): (Vec<&&DeviceFacts>, Vec<&&DeviceFacts>) =
            set.functions.iter().partition(|d| d.class.is_display());
        for (key, list) in [("gpus", gpus), ("hostDevices", others)] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(s, "          {key}:");
            for d in list {
                let p = permit(d, names);
                let _ = writeln!(s, "          # {}", about(d, names));
                let _ = writeln!(s, "          - name: {}", q(&entry_name(d)));
                let _ = writeln!(s, "            deviceName: {}", q(&p.resource));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NVIDIA's kubevirt-gpu-device-plugin (pkg/device_plugin/device_plugin.go,
    /// `getDeviceName`) on pci.ids names: KubeVirt's user guide shows the T4 as
    /// `nvidia.com/TU104GL_Tesla_T4` from an older plugin that kept the case; current
    /// plugins upper-case it.
    #[test]
    fn nvidia_kubevirt_gpu_device_plugin_resource_names() {
        let d = |x: u16| DeviceId(x);
        assert_eq!(
            nvidia_resource_name(Some("TU104GL [Tesla T4]"), d(0x1eb8)),
            "nvidia.com/TU104GL_TESLA_T4"
        );
        assert_eq!(
            nvidia_resource_name(Some("GK104 [GeForce GTX 760]"), d(0x1187)),
            "nvidia.com/GK104_GEFORCE_GTX_760"
        );
        assert_eq!(
            nvidia_resource_name(Some("GA102GL [RTX A6000]"), d(0x2230)),
            "nvidia.com/GA102GL_RTX_A6000"
        );
        // `/` and `.` become `_`; runs of spaces one `_`; other punctuation goes.
        assert_eq!(
            nvidia_resource_name(Some("GP102 [GeForce GTX 1080 Ti / 10.5]"), d(0x1b06)),
            "nvidia.com/GP102_GEFORCE_GTX_1080_TI___10_5"
        );
        assert_eq!(
            nvidia_resource_name(Some("  GV100GL  [Tesla V100 SXM2 16GB] "), d(0x1db1)),
            "nvidia.com/GV100GL_TESLA_V100_SXM2_16GB"
        );
        assert_eq!(nvidia_resource_name(None, d(0x2bb1)), "nvidia.com/2bb1");
    }
}
