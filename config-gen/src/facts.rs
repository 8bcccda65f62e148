//! [`HostFacts`] from the host model (`passthru-iommu-groups`' [`Host`]), which read
//! everything once, confined under its root: the CPU, the kernel and its build
//! options, the devices, the configuration files passthru reads or edits and the
//! boot tools present. Nothing here touches the file system.
//!
//! Where the tree does not show a tool, the distribution says how it boots
//! (os-release(5) `ID`/`ID_LIKE`): Debian, Ubuntu and Proxmox use initramfs-tools and
//! `update-grub`; Arch mkinitcpio; Fedora and the RHEL family dracut and
//! `grub2-mkconfig`. Every such choice is a [`Detection`] naming its evidence.

use crate::model::{
    Bootloader, Detection, DeviceFacts, GrubFlavor, HostFacts, Initramfs, KernelVersion,
};
use crate::{Error, Result};
use passthru_iommu_groups::boot::{self, BootSetup};
use passthru_iommu_groups::{findings_device, CpuVendor, Host, Stage};
use std::path::PathBuf;

/// `CONFIG_INTEL_IOMMU_DEFAULT_ON` from the kernel's build options: `y` (or Debian's
/// `CONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF=y`, on except for the integrated GPU) is
/// on, "is not set" without either is off, absent is unknown.
pub fn intel_default_on(b: &BootSetup) -> Option<bool> {
    let on = |k: &str| b.kernel_config.get(k).is_some_and(|v| v == "y");
    if on("CONFIG_INTEL_IOMMU_DEFAULT_ON") || on("CONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF") {
        return Some(true);
    }
    b.kernel_config
        .get("CONFIG_INTEL_IOMMU_DEFAULT_ON")
        .map(|v| v == "y")
}

/// `CONFIG_MODULES` from the kernel's build options: `y` is on, any other value ("is
/// not set") off, absent unknown.
pub fn loadable_modules(b: &BootSetup) -> Option<bool> {
    b.kernel_config.get("CONFIG_MODULES").map(|v| v == "y")
}

/// The distribution families os-release names, in the words of its `ID`/`ID_LIKE`.
fn family(b: &BootSetup) -> Option<(&'static str, String)> {
    let ids = b.distro_ids();
    let src = b.os_release_path.as_deref().unwrap_or(boot::OS_RELEASE);
    let evidence = |id: &str| format!("{src}: ID/ID_LIKE {id}");
    for id in &ids {
        let fam = match id.as_str() {
            "debian" | "ubuntu" | "pve" | "proxmox" | "linuxmint" | "pop" | "raspbian" => "debian",
            "arch" | "manjaro" | "endeavouros" => "arch",
            "fedora" | "rhel" | "centos" | "rocky" | "almalinux" | "ol" => "fedora",
            "opensuse" | "suse" | "sles" | "opensuse-tumbleweed" | "opensuse-leap" => "suse",
            _ => continue,
        };
        return Some((fam, evidence(id)));
    }
    None
}

/// The first of `paths` the tree has, as evidence.
fn first_present<'a>(b: &BootSetup, paths: &[&'a str]) -> Option<&'a str> {
    paths.iter().copied().find(|p| b.has(p))
}

fn initramfs(b: &BootSetup) -> Option<(Initramfs, String)> {
    let found = |p: &str| format!("{p} exists");
    if let Some(p) = first_present(b, &["/usr/sbin/update-initramfs", "/etc/initramfs-tools"]) {
        return Some((Initramfs::InitramfsTools, found(p)));
    }
    if let Some(p) = first_present(b, &["/usr/bin/mkinitcpio"]) {
        return Some((Initramfs::Mkinitcpio, found(p)));
    }
    if b.file(boot::MKINITCPIO_CONF).is_some() {
        return Some((Initramfs::Mkinitcpio, found(boot::MKINITCPIO_CONF)));
    }
    if let Some(p) = first_present(
        b,
        &["/usr/bin/dracut", "/usr/sbin/dracut", "/etc/dracut.conf"],
    ) {
        return Some((Initramfs::Dracut, found(p)));
    }
    let (fam, why) = family(b)?;
    let kind = match fam {
        "debian" => Initramfs::InitramfsTools,
        "arch" => Initramfs::Mkinitcpio,
        "fedora" | "suse" => Initramfs::Dracut,
        _ => return None,
    };
    Some((kind, format!("{why} (no initramfs tool in the tree)")))
}

fn grub_flavor(b: &BootSetup) -> (GrubFlavor, String) {
    let found = |p: &str| format!("{p} exists");
    if let Some(p) = first_present(b, &["/usr/sbin/update-grub"]) {
        return (GrubFlavor::UpdateGrub, found(p));
    }
    if let Some(p) = first_present(b, &["/usr/sbin/grub2-mkconfig", "/usr/bin/grub2-mkconfig"]) {
        return (GrubFlavor::Grub2Mkconfig, found(p));
    }
    if let Some(p) = first_present(b, &["/usr/sbin/grub-mkconfig", "/usr/bin/grub-mkconfig"]) {
        return (GrubFlavor::GrubMkconfig, found(p));
    }
    match family(b) {
        Some(("debian", why)) => (
            GrubFlavor::UpdateGrub,
            format!("{why} (no GRUB tool in the tree)"),
        ),
        Some(("fedora" | "suse", why)) => (
            GrubFlavor::Grub2Mkconfig,
            format!("{why} (no GRUB tool in the tree)"),
        ),
        Some((_, why)) => (
            GrubFlavor::GrubMkconfig,
            format!("{why} (no GRUB tool in the tree)"),
        ),
        None => (
            GrubFlavor::GrubMkconfig,
            "no GRUB tool and no os-release in the tree: the upstream name".to_string(),
        ),
    }
}

fn bootloader(b: &BootSetup) -> Option<(Bootloader, String)> {
    let found = |p: &str| format!("{p} exists");
    if b.file(boot::KERNEL_CMDLINE).is_some() {
        return Some((Bootloader::SystemdBoot, found(boot::KERNEL_CMDLINE)));
    }
    if b.file(boot::KERNELSTUB_CONFIG).is_some() {
        return Some((Bootloader::Kernelstub, found(boot::KERNELSTUB_CONFIG)));
    }
    if b.file(boot::GRUB_DEFAULT).is_some() {
        return Some((Bootloader::Grub, found(boot::GRUB_DEFAULT)));
    }
    None
}

/// The generator's facts from the host model (loaded in full), with no file-system
/// access. `findings` starts empty: add [`crate::verdicts::warnings`] of a check.
///
/// # Errors
/// [`Error::Request`] for a host loaded only to the inventory stage;
/// [`Error::Unreadable`] when a configuration file exists but could not be read (a
/// FIFO, a directory, not UTF-8, no permission): passthru never writes over what it
/// could not read.
pub fn from_host(host: &Host) -> Result<HostFacts> {
    if host.stage != Stage::Full {
        return Err(Error::Request(
            "the configuration needs the fully loaded host model (Host::load)".into(),
        ));
    }
    let b = &host.boot;
    if let Some((path, why)) = b.unreadable.iter().next() {
        return Err(Error::Unreadable {
            path: PathBuf::from(path),
            reason: why.clone(),
        });
    }
    let mut detected = Vec::new();
    let cpu = host.cpu_vendor;
    let kernel = host.kernel.as_deref().and_then(KernelVersion::parse);
    let mut intel_iommu_default_on = intel_default_on(b);
    // VT-d already active although the running command line does not ask for it: the
    // kernel turns it on by itself (CONFIG_INTEL_IOMMU_DEFAULT_ON, or the firmware's
    // DMA-protection opt-in).
    if cpu == CpuVendor::Intel && intel_iommu_default_on.is_none() && host.iommu.active() {
        let asked = host.cmdline.as_deref().is_some_and(|c| {
            c.split_whitespace().any(|t| {
                t.strip_prefix("intel_iommu=")
                    .is_some_and(|v| v.split(',').any(|o| o == "on"))
            })
        });
        if !asked {
            intel_iommu_default_on = Some(true);
        }
    }
    let acs_override_patch = host
        .kernel
        .as_deref()
        .filter(|k| k.ends_with("-pve"))
        .map(|_| true);
    let bootloader = bootloader(b).map(|(v, why)| {
        detected.push(Detection::new("bootloader", v.as_str(), why));
        v
    });
    let (grub_flavor, why) = grub_flavor(b);
    if bootloader == Some(Bootloader::Grub) {
        detected.push(Detection::new(
            "grub-update",
            match grub_flavor {
                GrubFlavor::UpdateGrub => "update-grub",
                GrubFlavor::Grub2Mkconfig => "grub2-mkconfig",
                _ => "grub-mkconfig",
            },
            why,
        ));
    }
    let initramfs = initramfs(b).map(|(v, why)| {
        detected.push(Detection::new("initramfs", v.as_str(), why));
        v
    });
    let proxmox_boot_tool = b.has("/usr/sbin/proxmox-boot-tool");
    let devices = host
        .devices
        .values()
        .map(|d| DeviceFacts {
            bdf: d.bdf,
            vendor: d.vendor,
            device: d.device,
            class: d.class,
            driver: d.driver.clone(),
            boot_vga: d.boot_vga == Some(true),
            name: None,
            bars64: findings_device::bars64_total(d),
            msix_relocation: findings_device::msix_relocation_bar(d).map(|(_, bar)| bar),
        })
        .collect();
    Ok(HostFacts {
        cpu,
        kernel,
        intel_iommu_default_on,
        loadable_modules: loadable_modules(b),
        kernel_config_path: b.kernel_config_path.clone(),
        acs_override_patch,
        bootloader,
        grub_flavor,
        proxmox_boot_tool,
        initramfs,
        devices,
        findings: Vec::new(),
        files: b.files.clone(),
        detected,
        framebuffer_devices: host
            .devices
            .values()
            .filter(|d| host.framebuffer_in_bars(d).is_some())
            .map(|d| d.bdf)
            .collect(),
        guest_phys_bits: host.guest_phys_bits(),
        device_names: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(kernel_config: &[(&str, &str)]) -> BootSetup {
        let mut b = BootSetup::default();
        for (k, v) in kernel_config {
            b.kernel_config.insert(k.to_string(), v.to_string());
        }
        b
    }

    #[test]
    fn kernel_config_default_on_variants() {
        assert_eq!(
            intel_default_on(&setup(&[("CONFIG_INTEL_IOMMU_DEFAULT_ON", "y")])),
            Some(true)
        );
        assert_eq!(
            intel_default_on(&setup(&[("CONFIG_INTEL_IOMMU_DEFAULT_ON", "n")])),
            Some(false)
        );
        // Debian's three-way choice (bugs.debian.org/935270).
        assert_eq!(
            intel_default_on(&setup(&[
                ("CONFIG_INTEL_IOMMU_DEFAULT_ON", "n"),
                ("CONFIG_INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF", "y")
            ])),
            Some(true)
        );
        assert_eq!(
            intel_default_on(&setup(&[("CONFIG_INTEL_IOMMU", "y")])),
            None
        );
    }

    /// A tree without /usr/sbin (a snapshot, an image): os-release decides, and says so.
    #[test]
    fn os_release_decides_when_no_tool_is_in_the_tree() {
        let cases: &[(&str, Initramfs, GrubFlavor)] = &[
            (
                "ID=debian",
                Initramfs::InitramfsTools,
                GrubFlavor::UpdateGrub,
            ),
            (
                "ID=ubuntu\nID_LIKE=debian",
                Initramfs::InitramfsTools,
                GrubFlavor::UpdateGrub,
            ),
            ("ID=arch", Initramfs::Mkinitcpio, GrubFlavor::GrubMkconfig),
            ("ID=fedora", Initramfs::Dracut, GrubFlavor::Grub2Mkconfig),
            (
                "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"",
                Initramfs::Dracut,
                GrubFlavor::Grub2Mkconfig,
            ),
        ];
        for (text, ir, gf) in cases {
            let mut b = BootSetup::default();
            b.os_release = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect();
            b.os_release_path = Some("/etc/os-release".into());
            let (got, why) = initramfs(&b).unwrap();
            assert_eq!(got, *ir, "{text}");
            assert!(why.starts_with("/etc/os-release: ID/ID_LIKE"), "{why}");
            assert_eq!(grub_flavor(&b).0, *gf, "{text}");
        }
        // A tool in the tree wins over the distribution's habit.
        let mut b = BootSetup::default();
        b.os_release.insert("ID".into(), "debian".into());
        b.present.insert("/usr/bin/dracut".into());
        assert_eq!(
            initramfs(&b),
            Some((Initramfs::Dracut, "/usr/bin/dracut exists".into()))
        );
        // Nothing at all: nothing invented.
        assert_eq!(initramfs(&BootSetup::default()), None);
    }

    /// Every file the generator writes or reads is one the host model reads, so a
    /// snapshot carries it and `config` on the snapshot sees what it sees live.
    #[test]
    fn every_file_config_touches_is_in_the_model() {
        use crate::host;
        let covered = |p: &str| {
            boot::FILES.contains(&p)
                || boot::DIRS.iter().any(|(d, suffix)| {
                    p.strip_prefix(d).is_some_and(|r| {
                        r.starts_with('/') && !r[1..].contains('/') && r.ends_with(suffix)
                    })
                })
        };
        for p in [
            host::GRUB_DEFAULT,
            host::KERNEL_CMDLINE,
            host::KERNELSTUB_CONFIG,
            host::ETC_MODULES,
            host::INITRAMFS_TOOLS_MODULES,
            host::MKINITCPIO_CONF,
            host::MKINITCPIO_DROPIN,
            host::DRACUT_DROPIN,
            host::MODPROBE_VFIO,
            host::MODULES_LOAD_VFIO,
            host::UDEV_VENDOR_RESET,
        ] {
            assert!(covered(p), "{p} is not read by the host model");
        }
    }

    /// A FIFO or a directory where a configuration file belongs: the model notes it,
    /// and the facts refuse, naming the path (never a hang, never "no GRUB").
    #[test]
    fn an_unreadable_config_file_is_refused_by_name() {
        for make in ["fifo", "dir"] {
            let d = tempfile::tempdir().unwrap();
            passthru_iommu_groups::fixture::scenario_amd()
                .write(d.path())
                .unwrap();
            let grub = d.path().join("etc/default/grub");
            std::fs::remove_file(&grub).unwrap();
            if make == "dir" {
                std::fs::create_dir(&grub).unwrap();
            } else {
                let ok = std::process::Command::new("mkfifo")
                    .arg(&grub)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "mkfifo (coreutils) is needed for this test");
            }
            let host = Host::load(d.path()).unwrap();
            let e = from_host(&host).unwrap_err();
            assert!(
                matches!(&e, Error::Unreadable { path, .. } if path == std::path::Path::new("/etc/default/grub")),
                "{make}: {e}"
            );
            assert!(e.to_string().contains("not a regular file"), "{make}: {e}");
        }
    }

    /// A configuration file masked by a link to /dev/null reads as empty (a FIFO
    /// stands in for the null device, which a test cannot make; what counts is that
    /// the link leads to `/dev/null` and that is no regular file).
    #[test]
    fn a_file_masked_by_dev_null_reads_empty() {
        let d = tempfile::tempdir().unwrap();
        passthru_iommu_groups::fixture::scenario_amd()
            .write(d.path())
            .unwrap();
        std::fs::create_dir_all(d.path().join("dev")).unwrap();
        let ok = std::process::Command::new("mkfifo")
            .arg(d.path().join("dev/null"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mkfifo (coreutils) is needed for this test");
        std::os::unix::fs::symlink("/dev/null", d.path().join("etc/modprobe.d/masked.conf"))
            .unwrap();
        let host = Host::load(d.path()).unwrap();
        let f = from_host(&host).unwrap();
        assert_eq!(f.files["/etc/modprobe.d/masked.conf"], "");
    }
}
