//! The docs/rules.md rules for host configuration, one test each, on the pure generator.

use passthru_config_gen::host::{
    self, KERNELSTUB_CONFIG, KERNEL_CMDLINE, MODPROBE_VFIO, MODULES_LOAD_VFIO,
};
use passthru_config_gen::{
    block, generate, Bootloader, CpuVendor, DeviceFacts, GrubFlavor, GuestKind, HostFacts,
    Initramfs, KernelVersion, Plan, Request,
};
use passthru_pci_ids::{Bdf, ClassCode};
use std::collections::BTreeMap;

fn dev(
    bdf: &str,
    vendor: u16,
    device: u16,
    class: u32,
    driver: &str,
    boot_vga: bool,
) -> DeviceFacts {
    DeviceFacts {
        bdf: bdf.parse().unwrap(),
        vendor: vendor.into(),
        device: device.into(),
        class: ClassCode::from_u32(class),
        driver: Some(driver.into()),
        boot_vga,
        name: None,
        bars64: 0,
        msix_relocation: None,
    }
}

fn facts(cpu: CpuVendor, kernel: &str) -> HostFacts {
    let mut files = BTreeMap::new();
    files.insert(
        "/etc/default/grub".to_string(),
        "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n".to_string(),
    );
    HostFacts {
        cpu,
        kernel: KernelVersion::parse(kernel),
        intel_iommu_default_on: None,
        loadable_modules: None,
        kernel_config_path: None,
        acs_override_patch: None,
        bootloader: Some(Bootloader::Grub),
        grub_flavor: GrubFlavor::UpdateGrub,
        proxmox_boot_tool: false,
        initramfs: Some(Initramfs::InitramfsTools),
        framebuffer_devices: Vec::new(),
        guest_phys_bits: None,
        device_names: Default::default(),
        devices: vec![
            dev("0000:05:00.0", 0x10de, 0x1187, 0x030000, "nouveau", false),
            dev(
                "0000:05:00.1",
                0x10de,
                0x0e0a,
                0x040300,
                "snd_hda_intel",
                false,
            ),
            dev("0000:0b:00.0", 0x1002, 0x7300, 0x030000, "amdgpu", true),
            dev(
                "0000:0b:00.1",
                0x1002,
                0xaae8,
                0x040300,
                "snd_hda_intel",
                false,
            ),
        ],
        findings: Vec::new(),
        files,
        detected: Vec::new(),
    }
}

fn req(devs: &[&str]) -> Request {
    Request {
        sets: devs
            .iter()
            .map(|d| {
                vec![d
                    .parse::<Bdf>()
                    .map(|b| b.slot())
                    .unwrap_or_else(|_| d.parse().unwrap())]
            })
            .collect(),
        ..Request::default()
    }
}

fn file<'a>(p: &'a Plan, path: &str) -> Option<&'a str> {
    p.all_files
        .iter()
        .find(|f| f.path == path)
        .map(|f| f.new.as_str())
}

fn codes(p: &Plan) -> Vec<&str> {
    p.warnings.iter().map(|w| w.code.name()).collect()
}

#[test]
fn intel_iommu_on_only_where_the_kernel_does_not_default_to_it() {
    let mut f = facts(CpuVendor::Intel, "6.12.1");
    let p = generate(&f, &req(&["05:00"])).unwrap();
    assert!(
        p.kernel_params.add.contains(&"intel_iommu=on".to_string()),
        "unknown config: add it"
    );
    f.intel_iommu_default_on = Some(false);
    assert!(generate(&f, &req(&["05:00"]))
        .unwrap()
        .kernel_params
        .add
        .contains(&"intel_iommu=on".to_string()));
    f.intel_iommu_default_on = Some(true);
    let p = generate(&f, &req(&["05:00"])).unwrap();
    assert!(
        !p.kernel_params
            .add
            .iter()
            .any(|t| t.starts_with("intel_iommu")),
        "{:?}",
        p.kernel_params
    );
}

#[test]
fn amd_never_gets_amd_iommu_on_and_a_present_one_is_flagged_not_dropped() {
    let mut f = facts(CpuVendor::Amd, "6.8.12-4-pve");
    f.files.insert(
        "/etc/default/grub".into(),
        "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet amd_iommu=on\"\n".into(),
    );
    let p = generate(&f, &req(&["05:00"])).unwrap();
    assert!(!p
        .kernel_params
        .add
        .iter()
        .any(|t| t.starts_with("amd_iommu")));
    assert!(p.kernel_params.remove.is_empty());
    assert!(codes(&p).contains(&"undocumented-param"));
    assert!(file(&p, "/etc/default/grub")
        .unwrap()
        .contains("\"quiet amd_iommu=on iommu=pt\""));
    // Removed only when asked.
    let r = Request {
        remove_params: vec!["amd_iommu=on".into()],
        ..req(&["05:00"])
    };
    let p = generate(&f, &r).unwrap();
    assert_eq!(p.kernel_params.remove, vec!["amd_iommu=on"]);
    assert!(file(&p, "/etc/default/grub")
        .unwrap()
        .contains("\"quiet iommu=pt\""));
    assert!(!codes(&p).contains(&"undocumented-param"));
}

#[test]
fn iommu_pt_is_optional() {
    let f = facts(CpuVendor::Amd, "6.8");
    let r = Request {
        iommu_pt: false,
        ..req(&["05:00"])
    };
    assert!(generate(&f, &r).unwrap().kernel_params.add.is_empty());
}

/// The firmware framebuffer is kept off a requested boot display with the parameter
/// that acts on the running kernel: `initcall_blacklist=sysfb_init` from 5.15
/// (drivers/firmware/sysfb.c registers the framebuffer device there, for simpledrm
/// too), `video=efifb:off video=vesafb:off` before; an unknown kernel gets both.
#[test]
fn framebuffer_params_follow_the_kernel_and_only_for_the_boot_display() {
    let add = |kernel: &str, slot: &str| {
        let mut f = facts(CpuVendor::Amd, "6.8");
        f.kernel = KernelVersion::parse(kernel);
        generate(&f, &req(&[slot])).unwrap().kernel_params.add
    };
    let fb = |v: &[String]| {
        v.iter()
            .filter(|t| t.starts_with("video=") || t.starts_with("initcall_blacklist="))
            .cloned()
            .collect::<Vec<_>>()
    };
    // 0b:00.0 is boot_vga; requesting only 05:00 adds nothing.
    assert!(fb(&add("6.8", "05:00")).is_empty());
    assert_eq!(fb(&add("6.8", "0b:00")), ["initcall_blacklist=sysfb_init"]);
    assert_eq!(
        fb(&add("5.15.0", "0b:00")),
        ["initcall_blacklist=sysfb_init"]
    );
    assert_eq!(
        fb(&add("5.14.21", "0b:00")),
        ["video=efifb:off", "video=vesafb:off"]
    );
    assert_eq!(
        fb(&add("unknown", "0b:00")),
        [
            "initcall_blacklist=sysfb_init",
            "video=efifb:off",
            "video=vesafb:off"
        ]
    );
    // A GPU that is not boot_vga but holds the framebuffer in a BAR (/proc/iomem).
    let mut f = facts(CpuVendor::Amd, "6.8");
    f.framebuffer_devices = vec!["0000:05:00.0".parse().unwrap()];
    let a = generate(&f, &req(&["05:00"])).unwrap();
    assert_eq!(fb(&a.kernel_params.add), ["initcall_blacklist=sysfb_init"]);
    assert!(a
        .param_reasons
        .iter()
        .any(|w| w.why.contains("holds the boot framebuffer in a BAR")));
}

/// With the IOMMU's address width below the CPU's, every guest format limits the
/// guest's physical address bits (QEMU host-phys-bits-limit, libvirt maxphysaddr,
/// Proxmox phys-bits); without, none does.
#[test]
fn guest_phys_bits_in_every_guest_format() {
    let mut f = facts(CpuVendor::Amd, "6.8");
    let p = generate(&f, &req(&["05:00"])).unwrap();
    assert!(p.guest.values().all(|t| !t.contains("phys-bits")));
    f.guest_phys_bits = Some(39);
    let p = generate(&f, &req(&["05:00"])).unwrap();
    let g = |k: GuestKind| p.guest.get(&k).unwrap().clone();
    assert!(g(GuestKind::Proxmox).contains("\ncpu: host,phys-bits=39\n"));
    assert!(g(GuestKind::Libvirt).contains("<maxphysaddr mode='passthrough' limit='39'/>"));
    assert!(g(GuestKind::Qemu).contains("host-phys-bits=on,host-phys-bits-limit=39"));
}

#[test]
fn acs_override_never_by_default_and_only_on_a_patched_kernel() {
    let mut f = facts(CpuVendor::Amd, "6.8.12-4-pve");
    let p = generate(&f, &req(&["05:00"])).unwrap();
    assert!(!p
        .kernel_params
        .add
        .iter()
        .any(|t| t.starts_with("pcie_acs_override")));
    let r = Request {
        acs_override: Some("downstream".into()),
        ..req(&["05:00"])
    };
    let p = generate(&f, &r).unwrap();
    assert!(!p
        .kernel_params
        .add
        .iter()
        .any(|t| t.starts_with("pcie_acs_override")));
    assert!(codes(&p).contains(&"acs-override-unsupported"));
    f.acs_override_patch = Some(true);
    let p = generate(&f, &r).unwrap();
    assert!(p
        .kernel_params
        .add
        .contains(&"pcie_acs_override=downstream".to_string()));
    assert!(codes(&p).contains(&"acs-override"), "security warning");
}

#[test]
fn vfio_virqfd_only_before_6_2() {
    for (k, want) in [
        ("6.1.0-13-amd64", true),
        ("6.2.0", false),
        ("6.8.12-4-pve", false),
    ] {
        let p = generate(&facts(CpuVendor::Amd, k), &req(&["05:00"])).unwrap();
        let has = file(&p, MODULES_LOAD_VFIO)
            .unwrap()
            .lines()
            .any(|l| l == "vfio_virqfd");
        assert_eq!(has, want, "kernel {k}");
    }
}

#[test]
fn ids_cover_every_function_sorted_and_deduplicated() {
    // A second identical card the host keeps: same ids.
    let f = identical_gpus();
    // Asking for function 1 alone still takes the whole slot; the shared 1002:7300 goes
    // by address (identical_gpus_... below), the rest by id.
    let p = generate(&f, &req(&["0b:00.1", "05:00"])).unwrap();
    let conf = file(&p, MODPROBE_VFIO).unwrap();
    assert!(
        conf.contains("\noptions vfio-pci ids=1002:aae8,10de:0e0a,10de:1187\n"),
        "{conf}"
    );
    assert!(codes(&p).contains(&"bind-by-address"));
    assert!(!codes(&p).contains(&"id-shared"));
}

const OVERRIDE: &str = host::UDEV_VFIO_OVERRIDE;

/// Two identical cards (1002:7300 at 0b:00.0 and 0c:00.0): the host keeps 0c:00.0.
fn identical_gpus() -> HostFacts {
    let mut f = facts(CpuVendor::Amd, "6.8");
    f.devices.push(dev(
        "0000:0c:00.0",
        0x1002,
        0x7300,
        0x030000,
        "amdgpu",
        false,
    ));
    f
}

fn rule_for(addr: &str) -> String {
    format!("ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"{addr}\", ATTR{{driver_override}}=\"vfio-pci\", RUN+=\"/bin/sh -c 'echo %k > /sys/bus/pci/drivers_probe'\"\n")
}

// udev(7) (systemd): KERNEL matches the event device's name (a PCI function's address),
// ATTR{file}="value" writes that sysfs attribute; drivers/pci/pci-driver.c: with
// driver_override set only the named driver matches.
#[test]
fn identical_gpus_bind_by_address_and_the_host_keeps_its_card() {
    let f = identical_gpus();
    let p = generate(&f, &req(&["0b:00"])).unwrap();
    let conf = file(&p, MODPROBE_VFIO).unwrap();
    // The shared id is not in ids=; the audio function's is.
    assert!(
        conf.contains("\noptions vfio-pci ids=1002:aae8\n"),
        "{conf}"
    );
    // The softdeps still load vfio-pci before amdgpu.
    assert!(conf.contains("\nsoftdep amdgpu pre: vfio-pci\n"), "{conf}");
    let rule = file(&p, OVERRIDE).expect("rule");
    assert!(rule.contains(&rule_for("0000:0b:00.0")), "{rule}");
    assert!(!rule.contains("0000:0c:00.0\", ATTR"), "{rule}");
    assert!(rule.contains("1002:7300 is also 0000:0c:00.0"), "{rule}");
    let w = p
        .warnings
        .iter()
        .find(|w| w.code.name() == "bind-by-address")
        .unwrap();
    assert!(
        w.message
            .contains("driverctl set-override 0000:0b:00.0 vfio-pci"),
        "{}",
        w.message
    );
    // initramfs-tools: a hook copies the rule into the image, made executable first.
    let hook = file(&p, host::INITRAMFS_TOOLS_OVERRIDE_HOOK).expect("hook");
    assert!(hook.starts_with("#!/bin/sh\n"), "{hook}");
    assert!(
        hook.contains(&format!(
            "\ncp -p {OVERRIDE} \"$DESTDIR/etc/udev/rules.d/\"\n"
        )),
        "{hook}"
    );
    let chmod = format!("chmod 0755 {}", host::INITRAMFS_TOOLS_OVERRIDE_HOOK);
    let at = |c: &str| p.commands.iter().position(|x| x == c);
    assert!(
        at(&chmod) < at("update-initramfs -u -k all"),
        "{:?}",
        p.commands
    );
    assert!(at(&chmod).is_some());
    // Without the identical card nothing is bound by address.
    let p = generate(&facts(CpuVendor::Amd, "6.8"), &req(&["0b:00"])).unwrap();
    assert!(file(&p, OVERRIDE).is_none());
    assert!(file(&p, MODPROBE_VFIO)
        .unwrap()
        .contains("ids=1002:7300,1002:aae8\n"));
    // Both cards requested: nothing stays on the host, ids= takes both.
    let p = generate(&f, &req(&["0b:00", "0c:00"])).unwrap();
    assert!(file(&p, OVERRIDE).is_none());
    // The other card already on vfio-pci is no host card either.
    let mut g = identical_gpus();
    g.devices.last_mut().unwrap().driver = Some("vfio-pci".into());
    assert!(file(&generate(&g, &req(&["0b:00"])).unwrap(), OVERRIDE).is_none());
}

#[test]
fn the_override_rule_goes_into_dracut_and_mkinitcpio_images() {
    let mut f = identical_gpus();
    f.initramfs = Some(Initramfs::Dracut);
    let p = generate(&f, &req(&["0b:00"])).unwrap();
    let d = file(&p, "/etc/dracut.conf.d/vfio.conf").unwrap();
    assert!(
        d.contains(&format!("\ninstall_items+=\" {OVERRIDE} \"\n")),
        "{d}"
    );
    assert!(file(&p, host::INITRAMFS_TOOLS_OVERRIDE_HOOK).is_none());
    f.initramfs = Some(Initramfs::Mkinitcpio);
    let p = generate(&f, &req(&["0b:00"])).unwrap();
    let m = file(&p, "/etc/mkinitcpio.conf.d/vfio.conf").unwrap();
    assert!(m.contains(&format!("\nFILES+=({OVERRIDE})\n")), "{m}");
    // No address binding: no such line.
    let mut g = facts(CpuVendor::Amd, "6.8");
    g.initramfs = Some(Initramfs::Dracut);
    let p = generate(&g, &req(&["0b:00"])).unwrap();
    assert!(!file(&p, "/etc/dracut.conf.d/vfio.conf")
        .unwrap()
        .contains("install_items"));
}

#[test]
fn address_binding_merges_with_earlier_runs_and_remove_takes_it_off() {
    let mut f = identical_gpus();
    let p = generate(&f, &req(&["0b:00"])).unwrap();
    // Applied: the host model reads the files back.
    for path in [OVERRIDE, MODPROBE_VFIO, host::INITRAMFS_TOOLS_OVERRIDE_HOOK] {
        f.files
            .insert(path.into(), file(&p, path).unwrap().to_string());
    }
    // Second run, same request: no file changes.
    let again = generate(&f, &req(&["0b:00"])).unwrap();
    assert!(
        !again.files.iter().any(
            |x| [OVERRIDE, MODPROBE_VFIO, host::INITRAMFS_TOOLS_OVERRIDE_HOOK]
                .contains(&x.path.as_str())
        ),
        "{:?}",
        again.files.iter().map(|x| &x.path).collect::<Vec<_>>()
    );
    // Another device requested: the earlier address stays bound, its id stays out.
    let p = generate(&f, &req(&["05:00"])).unwrap();
    let rule = file(&p, OVERRIDE).unwrap();
    assert!(rule.contains(&rule_for("0000:0b:00.0")), "{rule}");
    assert!(
        rule.contains("bound by address by an earlier run"),
        "{rule}"
    );
    let conf = file(&p, MODPROBE_VFIO).unwrap();
    assert!(
        conf.contains("\noptions vfio-pci ids=1002:aae8,10de:0e0a,10de:1187\n"),
        "{conf}"
    );
    // --remove of that slot: the rule goes, the block stays (empty).
    let p = generate(
        &f,
        &Request {
            remove: vec!["0b:00".parse().unwrap()],
            ..req(&["05:00"])
        },
    )
    .unwrap();
    let rule = file(&p, OVERRIDE).unwrap();
    assert!(!rule.contains("KERNEL=="), "{rule}");
    assert!(block::find(rule).unwrap().is_some());
}

#[test]
fn an_id_the_users_line_binds_is_never_dropped_for_an_address() {
    let mut f = identical_gpus();
    f.files.insert(
        "/etc/modprobe.d/gpu.conf".into(),
        "options vfio-pci ids=1002:7300,1002:aae8\n".into(),
    );
    let p = generate(&f, &req(&["0b:00"])).unwrap();
    assert!(file(&p, OVERRIDE).is_none());
    // The user's line claims the host's card too: still said.
    assert!(codes(&p).contains(&"id-shared"), "{:?}", codes(&p));
    assert!(p.refusals.is_empty(), "{:?}", p.refusals);
}

#[test]
fn disable_vga_only_when_no_guest_uses_x_vga() {
    let f = facts(CpuVendor::Amd, "6.8");
    let p = generate(&f, &req(&["05:00"])).unwrap();
    assert!(file(&p, MODPROBE_VFIO)
        .unwrap()
        .contains("\noptions vfio-pci disable_vga=1\n"));
    let p = generate(
        &f,
        &Request {
            x_vga: true,
            ..req(&["05:00"])
        },
    )
    .unwrap();
    assert!(!file(&p, MODPROBE_VFIO)
        .unwrap()
        .contains("options vfio-pci disable_vga=1"));
    assert!(p.guest.values().any(|g| g.contains("x-vga")));
}

#[test]
fn softdeps_for_competing_drivers_and_blacklist_only_on_request() {
    let f = facts(CpuVendor::Amd, "6.8");
    let p = generate(&f, &req(&["0b:00"])).unwrap();
    let conf = file(&p, MODPROBE_VFIO).unwrap();
    for m in ["amdgpu", "radeon", "snd_hda_intel"] {
        assert!(
            conf.contains(&format!("\nsoftdep {m} pre: vfio-pci\n")),
            "{m}: {conf}"
        );
    }
    assert!(!conf.contains("nouveau"));
    assert!(!conf.contains("\nblacklist "));
    let p = generate(
        &f,
        &Request {
            blacklist: true,
            ..req(&["0b:00"])
        },
    )
    .unwrap();
    assert!(file(&p, MODPROBE_VFIO)
        .unwrap()
        .contains("\nblacklist amdgpu\n"));
}

#[test]
fn every_generated_line_has_a_comment_above_it() {
    for init in [
        Initramfs::InitramfsTools,
        Initramfs::Mkinitcpio,
        Initramfs::Dracut,
    ] {
        let f = facts(CpuVendor::Intel, "6.1");
        let p = generate(
            &f,
            &Request {
                initramfs: Some(init),
                blacklist: true,
                ..req(&["05:00", "0b:00"])
            },
        )
        .unwrap();
        for fc in &p.all_files {
            if fc.path == "/etc/default/grub" {
                continue;
            }
            let lines: Vec<&str> = fc.new.lines().collect();
            assert_eq!(lines.first(), Some(&block::BEGIN), "{}", fc.path);
            for (i, l) in lines.iter().enumerate() {
                if !l.starts_with('#') {
                    assert!(
                        lines[i - 1].starts_with("# "),
                        "{}: line {} {l:?} has no comment above",
                        fc.path,
                        i + 1
                    );
                }
            }
        }
        // GRUB: one passthru comment per managed parameter, right above the value.
        let grub = file(&p, "/etc/default/grub").unwrap();
        for t in &p.kernel_params.add {
            assert!(grub.contains(&format!("# passthru: {t}: ")), "{t}: {grub}");
        }
    }
}

#[test]
fn systemd_boot_edits_etc_kernel_cmdline_and_refuses_to_create_it() {
    let mut f = facts(CpuVendor::Amd, "6.8.12-4-pve");
    f.bootloader = Some(Bootloader::SystemdBoot);
    f.proxmox_boot_tool = true;
    let p = generate(&f, &req(&["05:00"])).unwrap();
    assert!(file(&p, KERNEL_CMDLINE).is_none());
    assert!(codes(&p).contains(&"no-cmdline-file"));
    f.files.insert(
        KERNEL_CMDLINE.into(),
        "root=ZFS=rpool/ROOT/pve-1 boot=zfs\n".into(),
    );
    let p = generate(&f, &req(&["05:00"])).unwrap();
    assert_eq!(
        file(&p, KERNEL_CMDLINE),
        Some("root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt\n")
    );
    assert!(p
        .commands
        .contains(&"proxmox-boot-tool refresh".to_string()));
}

#[test]
fn kernelstub_is_driven_through_its_own_command() {
    let mut f = facts(CpuVendor::Intel, "6.9.3-76060903-generic");
    f.bootloader = Some(Bootloader::Kernelstub);
    f.files.insert(
        KERNELSTUB_CONFIG.into(),
        r#"{"default": {"kernel_options": ["quiet"]}, "user": {"kernel_options": ["quiet", "splash", "amd_iommu=on"], "esp_path": "/boot/efi"}}"#.into(),
    );
    let r = Request {
        remove_params: vec!["amd_iommu=on".into()],
        ..req(&["05:00"])
    };
    let p = generate(&f, &r).unwrap();
    assert!(
        p.commands
            .contains(&"kernelstub --add-options \"intel_iommu=on iommu=pt\"".to_string()),
        "{:?}",
        p.commands
    );
    assert!(p
        .commands
        .contains(&"kernelstub --delete-options \"amd_iommu=on\"".to_string()));
    assert!(
        file(&p, KERNELSTUB_CONFIG).is_none(),
        "kernelstub owns its file"
    );
    f.files.insert(KERNELSTUB_CONFIG.into(), "{ broken".into());
    let e = generate(&f, &r).unwrap_err().to_string();
    assert!(e.starts_with("/etc/kernelstub/configuration:1:"), "{e}");
}

#[test]
fn mkinitcpio_without_modconf_is_flagged() {
    let mut f = facts(CpuVendor::Intel, "6.12");
    f.initramfs = Some(Initramfs::Mkinitcpio);
    f.files.insert(
        host::MKINITCPIO_CONF.into(),
        "HOOKS=(base udev autodetect block filesystems)\n".into(),
    );
    let p = generate(&f, &req(&["05:00"])).unwrap();
    assert!(codes(&p).contains(&"modconf-missing"));
    assert_eq!(
        p.commands.first().map(String::as_str),
        Some("mkinitcpio -P")
    );
}

#[test]
fn second_generation_from_the_written_files_changes_nothing() {
    let mut f = facts(CpuVendor::Intel, "6.12");
    let r = req(&["05:00", "0b:00"]);
    let p = generate(&f, &r).unwrap();
    for fc in &p.all_files {
        f.files.insert(fc.path.clone(), fc.new.clone());
    }
    let again = generate(&f, &r).unwrap();
    assert!(
        again.is_noop(),
        "{:?}",
        again.files.iter().map(|f| f.diff()).collect::<Vec<_>>()
    );
    assert!(again.kernel_params.add.is_empty());
}

#[test]
fn requests_are_checked() {
    let f = facts(CpuVendor::Amd, "6.8");
    assert!(generate(&f, &Request::default()).is_err());
    assert!(generate(&f, &req(&["0c:00"]))
        .unwrap_err()
        .to_string()
        .contains("no PCI device at 0000:0c:00"));
    assert!(generate(&f, &req(&["05:00", "05:00.1"]))
        .unwrap_err()
        .to_string()
        .contains("requested twice"));
    let mut f = f;
    f.devices.push(dev(
        "0000:00:01.1",
        0x1022,
        0x1483,
        0x060400,
        "pcieport",
        false,
    ));
    assert!(generate(&f, &req(&["00:01"]))
        .unwrap_err()
        .to_string()
        .contains("0000:00:01.1 is a bridge"));
}

#[test]
fn existing_proxmox_vm_with_x_vga_on_seabios_drops_disable_vga() {
    // docs/rules.md: disable_vga=1 with x-vga=1 is contradictory; with OVMF Proxmox does not
    // give QEMU x-vga=on.
    let mut f = facts(CpuVendor::Amd, "6.8.12-4-pve");
    f.files.insert(
        "/etc/pve/qemu-server/100.conf".into(),
        "bios: ovmf\nmachine: q35\nhostpci0: 0b:00,pcie=1,x-vga=1\n".into(),
    );
    let p = generate(&f, &req(&["0b:00"])).unwrap();
    assert!(file(&p, MODPROBE_VFIO)
        .unwrap()
        .contains("\noptions vfio-pci disable_vga=1\n"));
    assert!(codes(&p).contains(&"x-vga-ovmf"));
    f.files.insert(
        "/etc/pve/qemu-server/100.conf".into(),
        "machine: q35\nhostpci0: 0000:0b:00,pcie=1,x-vga=1\n[snap1]\nbios: ovmf\n".into(),
    );
    let p = generate(&f, &req(&["0b:00"])).unwrap();
    assert!(!file(&p, MODPROBE_VFIO)
        .unwrap()
        .contains("options vfio-pci disable_vga=1"));
    assert!(p.warnings.iter().any(|w| w.code.name() == "vga-conflict"
        && w.message.starts_with("/etc/pve/qemu-server/100.conf:2:")));
    // A VM passing another slot does not matter.
    let p = generate(&f, &req(&["05:00"])).unwrap();
    assert!(file(&p, MODPROBE_VFIO).unwrap().contains("disable_vga=1"));
}

#[test]
fn bls_entries_are_updated_with_grubby() {
    let mut f = facts(CpuVendor::Amd, "6.11.4-301.fc41.x86_64");
    f.grub_flavor = GrubFlavor::Grub2Mkconfig;
    f.files.insert(
        "/etc/default/grub".into(),
        "GRUB_CMDLINE_LINUX_DEFAULT=\"amd_iommu=on\"\nGRUB_ENABLE_BLSCFG=true\n".into(),
    );
    let r = Request {
        remove_params: vec!["amd_iommu=on".into()],
        ..req(&["05:00"])
    };
    let p = generate(&f, &r).unwrap();
    assert_eq!(
        p.commands,
        vec![
            "update-initramfs -u -k all",
            "grub2-mkconfig -o /boot/grub2/grub.cfg",
            "grubby --update-kernel=ALL --args=\"iommu=pt\"",
            "grubby --update-kernel=ALL --remove-args=\"amd_iommu=on\"",
        ]
    );
    // Without BLS, no grubby.
    f.files.insert(
        "/etc/default/grub".into(),
        "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n".into(),
    );
    assert!(!generate(&f, &r)
        .unwrap()
        .commands
        .iter()
        .any(|c| c.starts_with("grubby")));
}

#[test]
fn a_grub_dropin_that_replaces_the_value_is_flagged() {
    // Debian's and Ubuntu's grub-mkconfig source /etc/default/grub.d/*.cfg after
    // /etc/default/grub (Ubuntu cloud images set GRUB_CMDLINE_LINUX_DEFAULT there): the
    // edit to /etc/default/grub would then never reach the kernel.
    let mut f = facts(CpuVendor::Amd, "6.8.12");
    let dropin = "/etc/default/grub.d/50-cloudimg-settings.cfg";
    f.files.insert(
        dropin.into(),
        "GRUB_CMDLINE_LINUX_DEFAULT=\"console=tty1 console=ttyS0\"\n".into(),
    );
    let p = generate(&f, &req(&["05:00"])).unwrap();
    let w = p
        .warnings
        .iter()
        .find(|w| w.code.name() == "grub-dropin-override")
        .expect("flagged");
    assert!(w.message.starts_with(dropin), "{}", w.message);
    // The drop-in is the user's: never among the files written.
    assert!(file(&p, dropin).is_none());
    // Extending the value keeps what /etc/default/grub set: nothing to say. Other
    // variables and other suffixes are not its business.
    for (path, text) in [
        (
            dropin,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT console=ttyS0\"\n",
        ),
        (
            dropin,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"${GRUB_CMDLINE_LINUX_DEFAULT} a\"\nGRUB_TIMEOUT=1\n",
        ),
        (dropin, "GRUB_CMDLINE_LINUX=\"console=ttyS0\"\n"),
        (
            "/etc/default/grub.d/old.cfg.bak",
            "GRUB_CMDLINE_LINUX_DEFAULT=x\n",
        ),
    ] {
        let mut g = facts(CpuVendor::Amd, "6.8.12");
        g.files.insert(path.into(), text.into());
        let p = generate(&g, &req(&["05:00"])).unwrap();
        assert!(
            !codes(&p).contains(&"grub-dropin-override"),
            "{path}: {text:?}"
        );
    }
    // A drop-in passthru cannot read is flagged with its line.
    let mut g = facts(CpuVendor::Amd, "6.8.12");
    g.files.insert(
        dropin.into(),
        "A=1\nGRUB_CMDLINE_LINUX_DEFAULT=\"x\n".into(),
    );
    let p = generate(&g, &req(&["05:00"])).unwrap();
    let w = p
        .warnings
        .iter()
        .find(|w| w.code.name() == "grub-dropin-override")
        .expect("flagged");
    assert!(
        w.message
            .starts_with(&format!("{dropin}:2: unterminated double quote")),
        "{}",
        w.message
    );
}

/// What an earlier run chose in passthru's own block stays: its ids (union with the
/// request), its blacklist lines and its x-vga (no disable_vga=1); --remove takes ids out.
#[test]
fn earlier_runs_choices_in_the_block_are_kept() {
    let mut f = facts(CpuVendor::Amd, "6.8");
    let mut first = generate(
        &f,
        &Request {
            x_vga: true,
            blacklist: true,
            ..req(&["0b:00"])
        },
    )
    .unwrap();
    let block = first.all_files.remove(
        first
            .all_files
            .iter()
            .position(|x| x.path == MODPROBE_VFIO)
            .unwrap(),
    );
    f.files.insert(MODPROBE_VFIO.into(), block.new);
    let p = generate(&f, &req(&["05:00"])).unwrap();
    let conf = file(&p, MODPROBE_VFIO).unwrap();
    assert!(
        conf.contains("\noptions vfio-pci ids=1002:7300,1002:aae8,10de:0e0a,10de:1187\n"),
        "{conf}"
    );
    assert!(!conf.contains("options vfio-pci disable_vga=1"), "{conf}");
    assert!(codes(&p).contains(&"x-vga-kept"));
    assert!(conf.contains("\nblacklist amdgpu\n"), "{conf}");
    // --remove 0b:00: its ids, softdeps and blacklist go; 05:00 stays.
    f.files.insert(MODPROBE_VFIO.into(), conf.to_string());
    let p = generate(
        &f,
        &Request {
            sets: Vec::new(),
            remove: vec!["0b:00".parse().unwrap()],
            ..Request::default()
        },
    )
    .unwrap();
    let conf = file(&p, MODPROBE_VFIO).unwrap();
    assert!(
        conf.contains("\noptions vfio-pci ids=10de:0e0a,10de:1187\n"),
        "{conf}"
    );
    assert!(!conf.contains("amdgpu"), "{conf}");
    assert!(p.guest.is_empty());
}

/// --early-ids: a narrower vfio-pci.ids= already on the command line (kernel/params.c
/// parameq: `-` and `_` alike) is replaced by the union, not left to conflict.
#[test]
fn early_ids_token_is_the_union_with_the_one_on_the_command_line() {
    let mut f = facts(CpuVendor::Amd, "6.8");
    f.files.insert(
        "/etc/default/grub".into(),
        "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet vfio_pci.ids=1002:7300,1002:aae8\"\n".into(),
    );
    let p = generate(
        &f,
        &Request {
            early_ids: true,
            ..req(&["05:00"])
        },
    )
    .unwrap();
    assert_eq!(
        p.kernel_params.add,
        [
            "iommu=pt",
            "vfio-pci.ids=1002:7300,1002:aae8,10de:0e0a,10de:1187"
        ]
    );
    assert_eq!(p.kernel_params.remove, ["vfio_pci.ids=1002:7300,1002:aae8"]);
    let grub = file(&p, "/etc/default/grub").unwrap();
    assert!(
        grub.contains("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt vfio-pci.ids=1002:7300,1002:aae8,10de:0e0a,10de:1187\""),
        "{grub}"
    );
}

/// Property test of the merge rule over runs: whatever sequence of `config` requests
/// and `--remove`s is applied, on a host with or without the user's own
/// `options vfio-pci ids=` line, every id bound before stays bound unless removed,
/// every requested id becomes bound, the user's bytes stay, passthru never adds an
/// `ids=` line that would override the user's, and each plan applied once more
/// changes nothing. "Bound" is read as modprobe does (modprobe.d(5); libkmod applies
/// every `options` line, files in name order, and vfio-pci's `ids` parameter keeps the
/// last value).
mod merge_over_runs {
    use super::{dev, facts};
    use passthru_config_gen::{generate, CpuVendor, HostFacts, Request};
    use passthru_pci_ids::Slot;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Three GPUs with their HDMI audio (ids from the scenario host (docs/rules.md) plus an RX 6800 XT).
    const DEVICES: &[(&str, u16, u16, u32, &str)] = &[
        ("0000:05:00.0", 0x10de, 0x1187, 0x030000, "nouveau"),
        ("0000:05:00.1", 0x10de, 0x0e0a, 0x040300, "snd_hda_intel"),
        ("0000:0b:00.0", 0x1002, 0x7300, 0x030000, "amdgpu"),
        ("0000:0b:00.1", 0x1002, 0xaae8, 0x040300, "snd_hda_intel"),
        ("0000:0c:00.0", 0x1002, 0x73bf, 0x030000, "amdgpu"),
        ("0000:0c:00.1", 0x1002, 0xab28, 0x040300, "snd_hda_intel"),
    ];
    const SLOTS: &[&str] = &["05:00", "0b:00", "0c:00"];

    fn ids_of(slot: &str) -> Vec<String> {
        DEVICES
            .iter()
            .filter(|d| d.0.contains(&format!("{slot}.")))
            .map(|d| format!("{:04x}:{:04x}", d.1, d.2))
            .collect()
    }

    fn host(user: &Option<(String, String)>) -> HostFacts {
        let mut f = facts(CpuVendor::Amd, "6.8.12");
        f.devices = DEVICES
            .iter()
            .map(|d| dev(d.0, d.1, d.2, d.3, d.4, false))
            .collect();
        if let Some((path, text)) = user {
            f.files.insert(path.clone(), text.clone());
        }
        f
    }

    /// (`ids=` lines in modprobe order, the ids the last one binds).
    fn bound(f: &HostFacts) -> (usize, BTreeSet<String>) {
        let mut n = 0;
        let mut last = BTreeSet::new();
        for (p, text) in &f.files {
            if !p.starts_with("/etc/modprobe.d/") {
                continue;
            }
            for l in text.lines() {
                let t: Vec<&str> = l.split_whitespace().collect();
                if t.len() > 2 && t[0] == "options" && t[1].replace('-', "_") == "vfio_pci" {
                    if let Some(v) = t[2..].iter().find_map(|o| o.strip_prefix("ids=")) {
                        n += 1;
                        last = v.split(',').map(str::to_string).collect();
                    }
                }
            }
        }
        (n, last)
    }

    fn keeps_every_byte(old: &str, new: &str) -> bool {
        let mut it = new.bytes();
        old.bytes().all(|b| it.any(|n| n == b))
    }

    #[derive(Debug, Clone)]
    enum Step {
        Config(Vec<usize>),
        Remove(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => prop::sample::subsequence(vec![0usize, 1, 2], 1..=3).prop_map(Step::Config),
            1 => (0usize..3).prop_map(Step::Remove),
        ]
    }

    fn user_file() -> impl Strategy<Value = Option<(String, String)>> {
        let line = prop::sample::subsequence(vec![0usize, 1, 2], 1..=3).prop_shuffle();
        prop_oneof![
            1 => Just(None),
            2 => (
                prop::sample::select(vec!["/etc/modprobe.d/vfio.conf", "/etc/modprobe.d/gpu.conf", "/etc/modprobe.d/zz-local.conf"]),
                line,
                any::<bool>(),
            )
                .prop_map(|(path, slots, extra)| {
                    let ids: Vec<String> = slots.iter().flat_map(|s| ids_of(SLOTS[*s])).collect();
                    let mut text = format!("# mine\noptions vfio_pci ids={} disable_vga=1\n", ids.join(","));
                    if extra {
                        text.push_str("options snd_hda_intel power_save=0\n");
                    }
                    Some((path.to_string(), text))
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn runs_only_ever_add_what_is_asked_and_keep_the_rest(
            user in user_file(),
            steps in prop::collection::vec(step(), 1..6),
        ) {
            let mut f = host(&user);
            for s in &steps {
                let (before_lines, before) = bound(&f);
                let req = match s {
                    Step::Config(slots) => Request {
                        sets: slots.iter().map(|i| vec![SLOTS[*i].parse::<Slot>().unwrap()]).collect(),
                        ..Request::default()
                    },
                    Step::Remove(i) => Request {
                        remove: vec![SLOTS[*i].parse().unwrap()],
                        ..Request::default()
                    },
                };
                let plan = generate(&f, &req).unwrap();
                if !plan.refusals.is_empty() {
                    // Refused: the user's line must change first; nothing is applied.
                    prop_assert!(user.is_some(), "a refusal without a user line: {:?}", plan.refusals);
                    continue;
                }
                for c in &plan.all_files {
                    f.files.insert(c.path.clone(), c.new.clone());
                }
                let (lines, after) = bound(&f);
                let (asked, removed): (Vec<String>, Vec<String>) = match s {
                    Step::Config(slots) => (slots.iter().flat_map(|i| ids_of(SLOTS[*i])).collect(), Vec::new()),
                    Step::Remove(i) => (Vec::new(), ids_of(SLOTS[*i])),
                };
                for id in before.iter().filter(|i| !removed.contains(i)).chain(&asked) {
                    prop_assert!(after.contains(id), "{id} not bound after {s:?}: {after:?} (before {before:?})");
                }
                for id in &removed {
                    prop_assert!(!after.contains(id), "{id} still bound after {s:?}");
                }
                if let Some((path, text)) = &user {
                    prop_assert!(keeps_every_byte(text, &f.files[path]), "{path} lost user bytes:\n{}", f.files[path]);
                    // Never a second ids= line over the user's one.
                    prop_assert_eq!(lines, before_lines.max(1));
                } else {
                    prop_assert!(lines <= 1);
                }
                let again = generate(&f, &req).unwrap();
                prop_assert!(again.is_noop(), "not idempotent after {s:?}: {:?}", again.files);
            }
        }
    }
}

/// A Polaris (covered by vendor-reset) gets the udev rule that selects it, in
/// passthru's block, and a warning to install the module; a second run changes nothing;
/// a Fiji (not covered) or an NVIDIA card gets no rule.
#[test]
fn vendor_reset_rule_for_covered_amd_gpus_only() {
    let mut f = facts(CpuVendor::Amd, "6.8");
    f.devices.push(dev(
        "0000:0e:00.0",
        0x1002,
        0x67df,
        0x030000,
        "amdgpu",
        false,
    ));
    let p = generate(&f, &req(&["0e:00"])).unwrap();
    let rule = file(&p, "/etc/udev/rules.d/99-passthru-vendor-reset.rules").expect("rule");
    assert!(rule.contains(
        "ACTION==\"add\", SUBSYSTEM==\"pci\", ATTR{vendor}==\"0x1002\", ATTR{device}==\"0x67df\", ATTR{reset_method}=\"device_specific\"\n"
    ), "{rule}");
    assert!(codes(&p).contains(&"vendor-reset"), "{:?}", codes(&p));
    // Applied once, the second plan leaves the file as it is.
    f.files.insert(
        "/etc/udev/rules.d/99-passthru-vendor-reset.rules".into(),
        rule.to_string(),
    );
    let again = generate(&f, &req(&["0e:00"])).unwrap();
    assert!(!again
        .files
        .iter()
        .any(|x| x.path == "/etc/udev/rules.d/99-passthru-vendor-reset.rules"));
    for slot in ["0b:00", "05:00"] {
        let p = generate(&facts(CpuVendor::Amd, "6.8"), &req(&[slot])).unwrap();
        assert!(
            file(&p, "/etc/udev/rules.d/99-passthru-vendor-reset.rules").is_none(),
            "{slot}"
        );
    }
}

// A kernel built without loadable modules (`# CONFIG_MODULES is not set` in its
// /boot/config-<release>) reads no /etc/modprobe.d: softdep and options lines there do
// nothing, and built-in vfio-pci takes `vfio-pci.ids=` and its other parameters from the
// command line (the kernel parses `module.param=` for built-in code:
// Documentation/admin-guide/kernel-parameters.rst, "module parameters").
#[test]
fn a_kernel_without_modules_gets_vfio_pci_options_on_the_command_line_only() {
    let mut f = facts(CpuVendor::Amd, "6.12.5");
    f.loadable_modules = Some(false);
    f.kernel_config_path = Some("/boot/config-6.12.5".into());
    let p = generate(&f, &req(&["05:00"])).unwrap();
    assert!(
        p.kernel_params
            .add
            .contains(&"vfio-pci.ids=10de:0e0a,10de:1187".to_string()),
        "{:?}",
        p.kernel_params
    );
    assert!(p
        .kernel_params
        .add
        .contains(&"vfio-pci.disable_vga=1".to_string()));
    for f in &p.all_files {
        assert!(
            !f.new.contains("softdep") && !f.new.contains("options vfio-pci"),
            "{} has modprobe lines:\n{}",
            f.path,
            f.new
        );
        assert!(
            !f.path.starts_with("/etc/modprobe.d/")
                && !f.path.starts_with("/etc/modules-load.d/")
                && f.path != "/etc/initramfs-tools/modules",
            "{} written for a kernel that loads no modules",
            f.path
        );
    }
    assert!(
        !p.commands.iter().any(|c| c.contains("initramfs")),
        "{:?}",
        p.commands
    );
    // The GRUB line carries the explaining comment.
    let grub = file(&p, "/etc/default/grub").unwrap();
    assert!(
        grub.lines()
            .any(|l| l.starts_with("# passthru: vfio-pci.ids=")
                && l.contains("/boot/config-6.12.5: CONFIG_MODULES is not set")),
        "{grub}"
    );
    let w = p
        .warnings
        .iter()
        .find(|w| w.code.name() == "no-modules")
        .unwrap();
    assert!(w.message.contains("nouveau"), "{}", w.message);
    // The same host with modules: the modprobe block as before, nothing on the command line.
    f.loadable_modules = Some(true);
    let p = generate(&f, &req(&["05:00"])).unwrap();
    assert!(!p
        .kernel_params
        .add
        .iter()
        .any(|t| t.starts_with("vfio-pci.")));
    assert!(file(&p, "/etc/modprobe.d/vfio.conf")
        .unwrap()
        .contains("softdep nouveau pre: vfio-pci"));
    assert!(!codes(&p).contains(&"no-modules"));
}
