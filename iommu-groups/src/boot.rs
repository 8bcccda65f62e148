//! The distribution and boot setup as the files under `etc/` and `boot/` show them:
//! every file a configuration writer reads or edits, which boot tools exist, the
//! running kernel's build options that matter for passthrough.
//!
//! The paths are system paths (`/etc/default/grub`), read under the host's root.
//! The model keeps file texts as they are; their syntax (GRUB's shell assignments,
//! modprobe.d lines, ...) is parsed by whoever edits them, once.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// GRUB's settings (`update-grub` / `grub-mkconfig` read them).
pub const GRUB_DEFAULT: &str = "/etc/default/grub";
/// GRUB's drop-in directory (Debian and Ubuntu source `*.cfg` after the main file).
pub const GRUB_DROPIN_DIR: &str = "/etc/default/grub.d";
/// systemd-boot's and proxmox-boot-tool's kernel command line.
pub const KERNEL_CMDLINE: &str = "/etc/kernel/cmdline";
/// Pop!_OS kernelstub's configuration.
pub const KERNELSTUB_CONFIG: &str = "/etc/kernelstub/configuration";
/// Modules loaded at boot (Debian family).
pub const ETC_MODULES: &str = "/etc/modules";
/// Modules put in the initramfs by initramfs-tools.
pub const INITRAMFS_TOOLS_MODULES: &str = "/etc/initramfs-tools/modules";
/// mkinitcpio's main file.
pub const MKINITCPIO_CONF: &str = "/etc/mkinitcpio.conf";
/// The initramfs-tools hook `passthru config` writes to copy its vfio-pci override
/// udev rule into the image (read back so a second run changes nothing).
pub const INITRAMFS_TOOLS_OVERRIDE_HOOK: &str = "/etc/initramfs-tools/hooks/passthru-vfio-override";
/// modprobe's configuration directory.
pub const MODPROBE_D: &str = "/etc/modprobe.d";
/// systemd's modules-load directory.
pub const MODULES_LOAD_D: &str = "/etc/modules-load.d";
/// Proxmox VE's VM configurations.
pub const PVE_QEMU_SERVER: &str = "/etc/pve/qemu-server";
/// dracut's drop-in directory.
pub const DRACUT_CONF_D: &str = "/etc/dracut.conf.d";
/// mkinitcpio's drop-in directory.
pub const MKINITCPIO_CONF_D: &str = "/etc/mkinitcpio.conf.d";
/// udev's local rules (the vendor-reset rule lives here).
pub const UDEV_RULES_D: &str = "/etc/udev/rules.d";
/// os-release(5): the distribution; `/usr/lib/os-release` when this is absent.
pub const OS_RELEASE: &str = "/etc/os-release";
/// os-release(5)'s fallback location.
pub const OS_RELEASE_FALLBACK: &str = "/usr/lib/os-release";

/// Single files read into [`BootSetup::files`].
pub const FILES: &[&str] = &[
    GRUB_DEFAULT,
    KERNEL_CMDLINE,
    KERNELSTUB_CONFIG,
    ETC_MODULES,
    INITRAMFS_TOOLS_MODULES,
    MKINITCPIO_CONF,
    INITRAMFS_TOOLS_OVERRIDE_HOOK,
];

/// Directories whose files with the given suffix are read into [`BootSetup::files`].
pub const DIRS: &[(&str, &str)] = &[
    (GRUB_DROPIN_DIR, ".cfg"),
    (MODPROBE_D, ".conf"),
    (MODULES_LOAD_D, ".conf"),
    (PVE_QEMU_SERVER, ".conf"),
    (DRACUT_CONF_D, ".conf"),
    (MKINITCPIO_CONF_D, ".conf"),
    (UDEV_RULES_D, ".rules"),
];

/// Paths whose presence is a fact ([`BootSetup::present`]): the tools that rebuild
/// the boot configuration and the initramfs, and the markers of their setups.
pub const PROBED: &[&str] = &[
    "/usr/sbin/update-grub",
    "/usr/sbin/grub-mkconfig",
    "/usr/bin/grub-mkconfig",
    "/usr/sbin/grub2-mkconfig",
    "/usr/bin/grub2-mkconfig",
    "/usr/sbin/grubby",
    "/usr/bin/grubby",
    "/usr/sbin/proxmox-boot-tool",
    "/usr/bin/kernelstub",
    "/usr/sbin/update-initramfs",
    "/usr/bin/mkinitcpio",
    "/usr/bin/dracut",
    "/usr/sbin/dracut",
    "/etc/initramfs-tools",
    "/etc/dracut.conf",
    "/etc/pve",
    "/usr/bin/pveversion",
];

/// Kernel build options kept from `/boot/config-<release>` (the rest of that file
/// is neither kept nor copied into snapshots).
pub const KERNEL_CONFIG_KEYS: &[&str] = &[
    "CONFIG_MODULES",
    "CONFIG_INTEL_IOMMU",
    "CONFIG_INTEL_IOMMU_DEFAULT_ON",
    "CONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF",
    "CONFIG_AMD_IOMMU",
    "CONFIG_IRQ_REMAP",
    "CONFIG_VFIO",
    "CONFIG_VFIO_PCI",
    "CONFIG_VFIO_IOMMU_TYPE1",
    "CONFIG_VFIO_DEVICE_CDEV",
    "CONFIG_IOMMUFD",
    "CONFIG_SYSFB_SIMPLEFB",
    "CONFIG_DRM_SIMPLEDRM",
    "CONFIG_FB_EFI",
    "CONFIG_FB_VESA",
];

/// Distribution and boot setup, as the files under `etc/` and `boot/` show them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BootSetup {
    /// os-release(5) as key/value pairs (quotes and escapes removed).
    pub os_release: BTreeMap<String, String>,
    /// Which os-release file was read (system path), when one was.
    pub os_release_path: Option<String>,
    /// Proxmox VE markers found (`/etc/pve`, `/usr/bin/pveversion`).
    pub proxmox: bool,
    /// The text of every file of [`FILES`] and [`DIRS`] that exists, by system path.
    pub files: BTreeMap<String, String>,
    /// Files of [`FILES`] and [`DIRS`] that exist but could not be read (a FIFO, a
    /// directory, not UTF-8, too large, no permission): path and why. A writer must
    /// not replace what it could not read.
    pub unreadable: BTreeMap<String, String>,
    /// The paths of [`PROBED`] that exist.
    pub present: BTreeSet<String>,
    /// [`KERNEL_CONFIG_KEYS`] as `/boot/config-<release>` sets them: `y`, `m`, a
    /// value, or `n` for "is not set". Empty when that file is absent.
    pub kernel_config: BTreeMap<String, String>,
    /// The kernel config file read (system path), when there was one.
    pub kernel_config_path: Option<String>,
}

impl BootSetup {
    /// The text of the file at system path `path`, when it exists and was read.
    pub fn file(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// Whether the probed path `path` (one of [`PROBED`]) exists.
    pub fn has(&self, path: &str) -> bool {
        self.present.contains(path)
    }

    /// The `*.conf` files of `/etc/modprobe.d`: path and text, by name.
    pub fn modprobe_d(&self) -> impl Iterator<Item = (&str, &str)> {
        let prefix = "/etc/modprobe.d/";
        self.files
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(p, _)| p.starts_with(prefix))
            .filter(|(p, _)| p.ends_with(".conf"))
            .map(|(p, t)| (p.as_str(), t.as_str()))
    }

    /// The ids listed by `options vfio-pci ids=...` (or `vfio_pci`) lines in modprobe.d.
    pub fn vfio_pci_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (_, text) in self.modprobe_d() {
            for line in text.lines() {
                let mut w = line.split_whitespace();
                if w.next() != Some("options") {
                    continue;
                }
                if !matches!(w.next(), Some("vfio-pci") | Some("vfio_pci")) {
                    continue;
                }
                for opt in w {
                    if let Some(ids) = opt.strip_prefix("ids=") {
                        out.extend(ids.split(',').map(|s| s.to_ascii_lowercase()));
                    }
                }
            }
        }
        out
    }

    /// `softdep X pre: ... vfio-pci ...` lines in modprobe.d: the drivers X.
    pub fn softdeps_on_vfio(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (_, text) in self.modprobe_d() {
            for line in text.lines() {
                let w: Vec<&str> = line.split_whitespace().collect();
                if w.len() >= 3
                    && w[0] == "softdep"
                    && w[2..].iter().any(|x| *x == "vfio-pci" || *x == "vfio_pci")
                {
                    out.push(w[1].to_string());
                }
            }
        }
        out
    }

    /// `blacklist X` lines in modprobe.d: the modules X.
    pub fn blacklisted(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (_, text) in self.modprobe_d() {
            for line in text.lines() {
                let mut w = line.split_whitespace();
                if w.next() == Some("blacklist") {
                    if let Some(m) = w.next() {
                        out.push(m.to_string());
                    }
                }
            }
        }
        out
    }

    /// The distribution's `ID` followed by its `ID_LIKE` words (os-release(5)), lower case.
    pub fn distro_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for key in ["ID", "ID_LIKE"] {
            if let Some(v) = self.os_release.get(key) {
                out.extend(v.split_whitespace().map(str::to_ascii_lowercase));
            }
        }
        out
    }
}

/// One os-release(5) line: `KEY=value`, the value unquoted (single or double
/// quotes) with the shell escapes of double quotes (`\"`, `\\`, `\$`, `` \` ``)
/// undone. Comments, blank lines and malformed lines give `None`.
pub(crate) fn os_release_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (k, v) = line.split_once('=')?;
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let v = v.trim();
    let value = if let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                    Some(e) => {
                        out.push('\\');
                        out.push(e);
                    }
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        out
    } else if let Some(inner) = v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
        inner.to_string()
    } else {
        v.to_string()
    };
    Some((k.to_string(), value))
}

/// One kernel config line: `CONFIG_X=v` or `# CONFIG_X is not set` (as `n`).
pub(crate) fn kernel_config_line(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("# ") {
        let key = rest.strip_suffix(" is not set")?;
        return key.starts_with("CONFIG_").then_some((key, "n"));
    }
    let (k, v) = line.split_once('=')?;
    k.starts_with("CONFIG_").then_some((k, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// os-release(5)'s own example lines.
    #[test]
    fn os_release_lines_as_the_manual_writes_them() {
        let t = |l: &str| os_release_line(l);
        assert_eq!(
            t(r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)""#),
            Some((
                "PRETTY_NAME".into(),
                "Debian GNU/Linux 12 (bookworm)".into()
            ))
        );
        assert_eq!(t("ID=debian"), Some(("ID".into(), "debian".into())));
        assert_eq!(
            t("ID_LIKE='rhel centos fedora'"),
            Some(("ID_LIKE".into(), "rhel centos fedora".into()))
        );
        assert_eq!(
            t(r#"NAME="a \"quoted\" \$name \\ x""#),
            Some(("NAME".into(), r#"a "quoted" $name \ x"#.into()))
        );
        assert_eq!(t("# comment"), None);
        assert_eq!(t(""), None);
        assert_eq!(t("no equals sign"), None);
        assert_eq!(t("BAD KEY=x"), None);
    }

    #[test]
    fn kernel_config_lines() {
        assert_eq!(
            kernel_config_line("CONFIG_MODULES=y"),
            Some(("CONFIG_MODULES", "y"))
        );
        assert_eq!(
            kernel_config_line("# CONFIG_INTEL_IOMMU_DEFAULT_ON is not set"),
            Some(("CONFIG_INTEL_IOMMU_DEFAULT_ON", "n"))
        );
        assert_eq!(kernel_config_line("# Automatically generated file"), None);
        assert_eq!(kernel_config_line("FOO=y"), None);
    }

    #[test]
    fn modprobe_d_is_the_conf_files_of_that_directory_only() {
        let mut b = BootSetup::default();
        for (p, t) in [
            ("/etc/modprobe.d/a.conf", "blacklist a\n"),
            ("/etc/modprobe.d/b.conf", "blacklist b\n"),
            ("/etc/modprobe.d.conf", "blacklist no\n"),
            ("/etc/modules-load.d/c.conf", "blacklist no\n"),
            ("/etc/default/grub", "blacklist no\n"),
        ] {
            b.files.insert(p.into(), t.into());
        }
        assert_eq!(b.blacklisted(), ["a", "b"]);
    }
}
