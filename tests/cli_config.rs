//! `passthru config` end to end: golden files for the scenario in docs/rules.md and for
//! Intel/Arch and Fedora variants, apply / idempotence / rollback on disk, usage errors.
//!
//! Each scenario's starting `/etc` (and tool markers under `usr/`) lives in
//! `tests/golden/config/<name>/before/`; the sysfs and procfs facts are built below.
//! Expected outputs: `dry-run.txt`, `plan.json` and `after/` (the files after `--apply`).
//! Regenerate with `PASSTHRU_BLESS=1 cargo test --test cli_config`, then review every
//! changed line against docs/rules.md.

use passthru_iommu_groups::fixture::{self, Fixture, FixtureDevice, IommuKind};
use passthru_iommu_groups::CpuVendor;
use passthru_pci_ids::Bdf;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Scenario {
    name: &'static str,
    host: Fixture,
    args: Vec<&'static str>,
}

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

/// docs/rules.md "The user's story": `iommu-groups`' fixture of it (Ryzen 7 3700X, Proxmox
/// 6.8 kernel, GTX 760 + Fury with their HDMI audio, amdgpu holding Fiji, the user's
/// hand-made grub, blacklist, vfio.conf and /etc/modules), plus Debian's
/// initramfs-tools module list and the Proxmox tool markers from `before/`.
fn proxmox_amd() -> Scenario {
    Scenario {
        name: "proxmox-amd",
        host: fixture::scenario_amd(),
        args: vec!["config", "05:00", "0b:00"],
    }
}

/// Intel desktop on Arch, VT-d not on yet (firmware DMAR table only): the iGPU is the
/// boot display, a discrete NVIDIA card (10de:2503 + audio 10de:228e) goes to the guest;
/// the kernel config leaves VT-d off (`# CONFIG_INTEL_IOMMU_DEFAULT_ON is not set`, as
/// Arch ships it), GRUB + mkinitcpio (`before/`).
fn intel_arch() -> Scenario {
    let host = Fixture::new(CpuVendor::Intel, IommuKind::FirmwareOnly)
        .kernel("6.12.1-arch1-1")
        .cmdline("BOOT_IMAGE=/vmlinuz-linux root=/dev/nvme0n1p2 rw loglevel=3 quiet")
        .device(
            FixtureDevice::gpu(bdf("00:02.0"), 0x8086, 0x4680)
                .driver("i915")
                .boot_vga(true),
        )
        .device(FixtureDevice::root_port(bdf("00:01.0"), 0x01).driver("pcieport"))
        .device(
            FixtureDevice::gpu(bdf("01:00.0"), 0x10de, 0x2503)
                .parent(bdf("00:01.0"))
                .driver("nvidia"),
        )
        .device(
            FixtureDevice::hdmi_audio(bdf("01:00.1"), 0x10de, 0x228e)
                .parent(bdf("00:01.0"))
                .driver("snd_hda_intel"),
        );
    // A desktop with KVM (as any such host has it loaded).
    let mut host = host;
    host.modules.extend(["kvm", "kvm_intel"].map(String::from));
    Scenario {
        name: "intel-arch",
        host,
        args: vec!["config", "01:00"],
    }
}

/// An AMD desktop: a Radeon RX 6800 XT (1002:73bf + audio 1002:ab28, one group) behind
/// one root port, the APU (the boot display) behind another.
fn navi_desktop(kernel: &str, cmdline: &str) -> Fixture {
    Fixture::new(CpuVendor::Amd, IommuKind::Amd)
        .kernel(kernel)
        .cmdline(cmdline)
        .device(
            FixtureDevice::root_port(bdf("00:03.1"), 0x0c)
                .driver("pcieport")
                .group(1),
        )
        .device(
            FixtureDevice::gpu(bdf("0c:00.0"), 0x1002, 0x73bf)
                .parent(bdf("00:03.1"))
                .driver("amdgpu")
                .group(2),
        )
        .device(
            FixtureDevice::hdmi_audio(bdf("0c:00.1"), 0x1002, 0xab28)
                .parent(bdf("00:03.1"))
                .driver("snd_hda_intel")
                .group(2),
        )
        .device(
            FixtureDevice::root_port(bdf("00:08.1"), 0x0e)
                .driver("pcieport")
                .group(3),
        )
        .device(
            FixtureDevice::gpu(bdf("0e:00.0"), 0x1002, 0x164e)
                .parent(bdf("00:08.1"))
                .driver("amdgpu")
                .boot_vga(true)
                .group(4),
        )
}

/// AMD CPU + Radeon RX 6800 XT (1002:73bf, audio 1002:ab28; one group, no ACS between
/// functions) on Fedora with the APU as boot display: GRUB with grub2-mkconfig and
/// dracut; the user's `amd_iommu=on` sits in GRUB_CMDLINE_LINUX (which passthru does not
/// edit); early binding and a QEMU + libvirt guest requested.
fn fedora_dracut() -> Scenario {
    let mut host = navi_desktop(
        "6.11.4-301.fc41.x86_64",
        "BOOT_IMAGE=(hd0,gpt2)/vmlinuz-6.11.4-301.fc41.x86_64 root=/dev/mapper/fedora-root ro rd.lvm.lv=fedora/root rhgb quiet amd_iommu=on",
    );
    host.modules.extend(["kvm", "kvm_amd"].map(String::from));
    Scenario {
        name: "fedora-dracut",
        host,
        args: vec![
            "config",
            "1002:73bf",
            "--early-ids",
            "--remove-param",
            "amd_iommu=on",
            "--guest",
            "qemu",
            "--guest",
            "libvirt",
        ],
    }
}

/// A self-built kernel with no loadable modules on the same desktop
/// (`# CONFIG_MODULES is not set` in `before/boot/config-6.12.5-mono`, VFIO and KVM
/// built in), GRUB: modprobe.d would do nothing, so vfio-pci's options go on the
/// command line and no module file is written.
fn amd_no_modules() -> Scenario {
    let host = navi_desktop(
        "6.12.5-mono",
        "BOOT_IMAGE=/boot/vmlinuz-6.12.5-mono root=/dev/nvme0n1p2 ro quiet",
    )
    // KVM built in: no /proc/modules line, but /sys/module/kvm (its parameters) and
    // /dev/kvm.
    .file("sys/module/kvm/parameters/halt_poll_ns", "200000\n")
    .file("dev/kvm", "");
    Scenario {
        name: "amd-no-modules",
        host,
        args: vec!["config", "0c:00"],
    }
}

/// The scenario host (docs/rules.md) installed on ZFS: systemd-boot through proxmox-boot-tool, the
/// command line in /etc/kernel/cmdline (`before/`), the user's `amd_iommu=on` removed on
/// request, the Fiji card alone, Proxmox guest lines only.
fn proxmox_systemd_boot() -> Scenario {
    Scenario {
        name: "proxmox-systemd-boot",
        host: fixture::scenario_amd(),
        args: vec![
            "config",
            "0b:00",
            "--remove-param",
            "amd_iommu=on",
            "--guest",
            "proxmox",
        ],
    }
}

/// Debian 11 (kernel 5.10) on an Intel workstation, GRUB and initramfs-tools
/// (`before/`), VT-d on: the NVIDIA boot display (Quadro RTX 4000, 10de:1eb1 + audio
/// 10de:10f8) goes to the guest. Host facts changed as Linux shows them: efifb's
/// region inside the GPU's BAR 1 in /proc/iomem (kernel/resource.c format), so a
/// pre-5.15 kernel gets `video=efifb:off video=vesafb:off`; and a constructed
/// address-width mismatch, CPU `address sizes : 46 bits physical`
/// (arch/x86/kernel/cpu/proc.c) against a VT-d `cap` whose MGAW field gives 39 bits
/// (drivers/iommu/intel/iommu.h), so every guest format limits the guest to 39 bits;
/// and the user's `intremap=off` (no-intremap: vfio_iommu_type1 refuses devices) removed
/// on request.
fn intel_debian11() -> Scenario {
    let dev = "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0";
    let mut host = Fixture::new(CpuVendor::Intel, IommuKind::Intel)
        .kernel("5.10.0-28-amd64")
        .cmdline("BOOT_IMAGE=/boot/vmlinuz-5.10.0-28-amd64 root=/dev/sda2 ro quiet intremap=off")
        .device(
            FixtureDevice::root_port(bdf("00:01.0"), 0x01)
                .driver("pcieport")
                .group(1),
        )
        .device(
            FixtureDevice::gpu(bdf("01:00.0"), 0x10de, 0x1eb1)
                .parent(bdf("00:01.0"))
                .driver("nouveau")
                .boot_vga(true)
                .group(2),
        )
        .device(
            FixtureDevice::hdmi_audio(bdf("01:00.1"), 0x10de, 0x10f8)
                .parent(bdf("00:01.0"))
                .driver("snd_hda_intel")
                .group(2),
        )
        .file(
            "proc/cpuinfo",
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Fixture CPU\n\
             flags\t\t: fpu vme de pse msr pae vmx lm\n\
             address sizes\t: 46 bits physical, 48 bits virtual\n\n",
        )
        .file(
            "sys/devices/virtual/iommu/dmar0/intel-iommu/cap",
            "d2008c40660462\n",
        )
        .file(
            "sys/devices/virtual/iommu/dmar0/intel-iommu/ecap",
            "f050da\n",
        )
        .file(
            &format!("{dev}/resource"),
            &format!(
                "0x00000000f6000000 0x00000000f6ffffff 0x0000000000040200\n\
                 0x00000000e0000000 0x00000000efffffff 0x000000000014220c\n\
                 0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                 0x00000000f0000000 0x00000000f1ffffff 0x000000000014220c\n\
                 0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                 0x000000000000e000 0x000000000000e07f 0x0000000000040101\n{}",
                "0x0000000000000000 0x0000000000000000 0x0000000000000000\n".repeat(7)
            ),
        )
        .file(
            "proc/iomem",
            "00000000-00000fff : Reserved\n\
             00001000-0009ffff : System RAM\n\
             e0000000-f1ffffff : PCI Bus 0000:01\n\
             \x20 e0000000-efffffff : 0000:01:00.0\n\
             \x20   e0000000-e07fffff : efifb\n\
             \x20 f0000000-f1ffffff : 0000:01:00.0\n",
        );
    host.modules.extend(["kvm", "kvm_intel"].map(String::from));
    Scenario {
        name: "intel-debian11",
        host,
        args: vec!["config", "01:00", "--remove-param", "intremap=off"],
    }
}

/// Two identical GeForce RTX 3090 cards (10de:2204 + HDMI audio 10de:1aef, each card in
/// a group of its own behind its root port) on an AMD host, both on the nvidia driver:
/// the card at 0b:00 goes to the guest, the one at 0a:00 stays the host's. ids= would
/// take both, so passthru binds 0b:00.0 and 0b:00.1 by address (driver_override udev
/// rule). The ids are the real card's (pci.ids); the topology is constructed.
fn identical_gpus(kernel: &str, cmdline: &str) -> Fixture {
    let mut host = Fixture::new(CpuVendor::Amd, IommuKind::Amd)
        .kernel(kernel)
        .cmdline(cmdline);
    for (port, bus, group) in [("00:01.1", 0x0a, 1), ("00:03.1", 0x0b, 3)] {
        host = host
            .device(
                FixtureDevice::root_port(bdf(port), bus)
                    .driver("pcieport")
                    .group(group),
            )
            .device(
                FixtureDevice::gpu(bdf(&format!("{bus:02x}:00.0")), 0x10de, 0x2204)
                    .parent(bdf(port))
                    .driver("nvidia")
                    .group(group + 1),
            )
            .device(
                FixtureDevice::hdmi_audio(bdf(&format!("{bus:02x}:00.1")), 0x10de, 0x1aef)
                    .parent(bdf(port))
                    .driver("snd_hda_intel")
                    .group(group + 1),
            );
    }
    host.modules.extend(["kvm", "kvm_amd"].map(String::from));
    host
}

/// Identical cards on Fedora: GRUB (grub2-mkconfig) and dracut, which copies the
/// override rule into the initramfs (`install_items`).
fn identical_gpus_grub() -> Scenario {
    Scenario {
        name: "identical-gpus-grub",
        host: identical_gpus(
            "6.11.4-301.fc41.x86_64",
            "BOOT_IMAGE=(hd0,gpt2)/vmlinuz-6.11.4-301.fc41.x86_64 root=/dev/mapper/fedora-root ro rhgb quiet",
        ),
        args: vec!["config", "0b:00"],
    }
}

/// Identical cards on Proxmox with systemd-boot (proxmox-boot-tool) and
/// initramfs-tools, which has no setting to copy the rule in: said in a warning.
fn identical_gpus_systemd_boot() -> Scenario {
    Scenario {
        name: "identical-gpus-systemd-boot",
        host: identical_gpus(
            "6.8.12-4-pve",
            "initrd=\\EFI\\proxmox\\6.8.12-4-pve\\initrd.img-6.8.12-4-pve root=ZFS=rpool/ROOT/pve-1 boot=zfs",
        ),
        args: vec!["config", "0b:00", "--guest", "proxmox"],
    }
}

fn golden_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/config")
        .join(name)
}

fn copy_tree(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            fs::create_dir_all(&dst).unwrap();
            copy_tree(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// Files of a tree, relative, sorted (backups and tool markers excluded).
fn files_of(root: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &root.join("etc"), &mut out);
    out.sort();
    out
}

fn build_root(s: &Scenario) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    s.host.write(d.path()).unwrap();
    copy_tree(&golden_dir(s.name).join("before"), d.path());
    d
}

fn passthru(root: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_passthru"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

/// Codes of the `iommu-groups` verdicts carried into the warnings. Their wording belongs
/// to that crate: the goldens keep code and device, [`verdicts_are_carried_verbatim`]
/// checks the text against a live `check`.
const VERDICT_CODES: &[&str] = &[
    "iommu-off",
    "no-iommu-group",
    "group-shared",
    "no-reset",
    "reset-bug",
    "host-driver",
    "boot-vga",
    "acs-missing",
    "companion-function",
];

fn mask_line(line: &str) -> String {
    for c in VERDICT_CODES {
        if let Some(rest) = line.strip_prefix(&format!("  [{c}] ")) {
            let who = rest
                .split(": ")
                .next()
                .filter(|w| w.parse::<Bdf>().is_ok())
                .unwrap_or("host");
            return format!("  [{c}] {who}: <verdict text>");
        }
    }
    line.to_string()
}

fn mask_report(out: &str) -> String {
    out.lines().map(|l| mask_line(l) + "\n").collect()
}

fn mask_json(out: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(out).unwrap();
    for w in v["warnings"].as_array_mut().unwrap() {
        let code = w["code"].as_str().unwrap().to_string();
        if VERDICT_CODES.contains(&code.as_str()) {
            let msg = w["message"].as_str().unwrap();
            let who = msg
                .split(": ")
                .next()
                .filter(|w| w.parse::<Bdf>().is_ok())
                .unwrap_or("host")
                .to_string();
            w["message"] = serde_json::Value::String(format!("{who}: <verdict text>"));
        }
    }
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

fn bless() -> bool {
    std::env::var_os("PASSTHRU_BLESS").is_some_and(|v| v == "1")
}

fn check_golden(path: &Path, actual: &str) {
    if bless() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with PASSTHRU_BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{} differs (PASSTHRU_BLESS=1 regenerates; review the change)",
        path.display()
    );
}

/// The exit status `check` gives for the scenario's devices: `config` gives the same
/// (one rule for every command: 1 when a device fails).
fn check_exit(r: &Path, s: &Scenario) -> i32 {
    let mut args = vec!["check", "--json"];
    args.extend(
        s.args
            .iter()
            .copied()
            .filter(|a| a.parse::<passthru_pci_ids::Slot>().is_ok()),
    );
    passthru(r, &args).0
}

fn run_scenario(s: Scenario) {
    let g = golden_dir(s.name);
    let root = build_root(&s);
    let r = root.path();
    let want = check_exit(r, &s);
    let before: Vec<(PathBuf, Vec<u8>)> = files_of(r)
        .into_iter()
        .map(|p| {
            let b = fs::read(r.join(&p)).unwrap();
            (p, b)
        })
        .collect();

    // Dry run: report, nothing written.
    let (code, out, err) = passthru(r, &s.args);
    assert_eq!(code, want, "stderr: {err}");
    check_golden(&g.join("dry-run.txt"), &mask_report(&out));
    let after_dry: Vec<(PathBuf, Vec<u8>)> = files_of(r)
        .into_iter()
        .map(|p| {
            let b = fs::read(r.join(&p)).unwrap();
            (p, b)
        })
        .collect();
    assert_eq!(before, after_dry, "a dry run must not write");

    // JSON: the documented shape, plus how the boot tools were chosen.
    let mut args = s.args.clone();
    args.push("--json");
    let (code, out, err) = passthru(r, &args);
    assert_eq!(code, want, "stderr: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "commands",
            "detected",
            "files",
            "guest",
            "kernel_params",
            "warnings"
        ]
    );
    for d in v["detected"].as_array().unwrap() {
        let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["evidence", "value", "what"]);
    }
    for f in v["files"].as_array().unwrap() {
        let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["content", "diff", "path"]);
    }
    check_golden(&g.join("plan.json"), &mask_json(&out));

    // Apply: every written file matches after/, untouched files keep their bytes.
    let mut args = s.args.clone();
    args.push("--apply");
    let (code, out, err) = passthru(r, &args);
    assert_eq!(code, want, "stderr: {err}");
    assert!(out.contains("Applied: wrote "), "{out}");
    let written: Vec<PathBuf> = files_of(r);
    if bless() {
        let _ = fs::remove_dir_all(g.join("after"));
    }
    for p in &written {
        let now = fs::read_to_string(r.join(p)).unwrap();
        let was = before.iter().find(|(q, _)| q == p).map(|(_, b)| b.clone());
        if was.as_deref() != Some(now.as_bytes()) {
            check_golden(&g.join("after").join(p), &now);
        } else {
            assert!(
                !g.join("after").join(p).exists() || bless(),
                "{} unchanged but has an after/ golden",
                p.display()
            );
        }
    }
    if !bless() {
        // Every after/ golden was produced.
        let expected: Vec<PathBuf> = files_of(&g.join("after"));
        for p in expected {
            assert!(
                written.contains(&p),
                "{} expected but not written",
                p.display()
            );
        }
    }
    let sets = fs::read_dir(r.join("var/lib/passthru/backups"))
        .unwrap()
        .count();
    assert_eq!(sets, 1);

    // Second apply: nothing changes, no new backup set.
    let snapshot: Vec<(PathBuf, Vec<u8>)> = files_of(r)
        .into_iter()
        .map(|p| {
            let b = fs::read(r.join(&p)).unwrap();
            (p, b)
        })
        .collect();
    let (code, out, err) = passthru(r, &args);
    assert_eq!(code, want, "stderr: {err}");
    assert!(
        out.contains("Nothing to change") && out.contains("Applied: nothing changed."),
        "{out}"
    );
    let again: Vec<(PathBuf, Vec<u8>)> = files_of(r)
        .into_iter()
        .map(|p| {
            let b = fs::read(r.join(&p)).unwrap();
            (p, b)
        })
        .collect();
    assert_eq!(snapshot, again);
    assert_eq!(
        fs::read_dir(r.join("var/lib/passthru/backups"))
            .unwrap()
            .count(),
        1
    );

    // Rollback: byte for byte the starting tree; created files gone.
    let (code, out, err) = passthru(r, &["config", "--rollback"]);
    assert_eq!(code, 0, "stderr: {err}\n{out}");
    let rolled: Vec<(PathBuf, Vec<u8>)> = files_of(r)
        .into_iter()
        .map(|p| {
            let b = fs::read(r.join(&p)).unwrap();
            (p, b)
        })
        .collect();
    assert_eq!(before, rolled);
    // A second rollback has nothing left.
    let (code, _, err) = passthru(r, &["config", "--rollback"]);
    assert_eq!(code, 2);
    assert!(err.contains("no backup set"), "{err}");
}

#[test]
fn golden_proxmox_amd_users_scenario() {
    run_scenario(proxmox_amd());
}

#[test]
fn golden_amd_kernel_without_modules() {
    run_scenario(amd_no_modules());
    // What the golden shows: the options on the command line, no modprobe.d file.
    let plan = fs::read_to_string(golden_dir("amd-no-modules").join("plan.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let add: Vec<&str> = v["kernel_params"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(add.contains(&"vfio-pci.ids=1002:73bf,1002:ab28"), "{add:?}");
    assert!(add.contains(&"vfio-pci.disable_vga=1"), "{add:?}");
    for f in v["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        assert!(!path.starts_with("/etc/modprobe.d/"), "{path}");
        assert!(!path.starts_with("/etc/modules-load.d/"), "{path}");
        assert!(
            !f["content"].as_str().unwrap().contains("softdep"),
            "{path}"
        );
    }
    assert!(v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["code"] == "no-modules"));
}

#[test]
fn golden_proxmox_systemd_boot() {
    run_scenario(proxmox_systemd_boot());
}

#[test]
fn golden_intel_arch_mkinitcpio() {
    run_scenario(intel_arch());
}

#[test]
fn golden_fedora_dracut_grub2() {
    run_scenario(fedora_dracut());
}

#[test]
fn golden_intel_debian11_framebuffer_and_phys_bits() {
    run_scenario(intel_debian11());
}

#[test]
fn golden_identical_gpus_grub_dracut() {
    run_scenario(identical_gpus_grub());
}

#[test]
fn golden_identical_gpus_systemd_boot() {
    run_scenario(identical_gpus_systemd_boot());
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    let s = proxmox_amd();
    let root = build_root(&s);
    let r = root.path();
    let (code, _, err) = passthru(r, &["config"]);
    assert_eq!(code, 2);
    assert!(err.contains("name the devices"), "{err}");
    let (code, _, err) = passthru(r, &["config", "0c:00"]);
    assert_eq!(code, 2);
    assert!(err.contains("no PCI device at 0000:0c:00"), "{err}");
    let (code, _, err) = passthru(r, &["config", "zz"]);
    assert_eq!(code, 2);
    assert!(err.contains("\"zz\""), "{err}");
    // --run-commands acts on the running system: refused under another root.
    let (code, _, err) = passthru(r, &["config", "0b:00", "--apply", "--run-commands"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--run-commands acts on the running system"),
        "{err}"
    );
    // ...and needs --apply.
    let (code, _, _) = passthru(r, &["config", "0b:00", "--run-commands"]);
    assert_eq!(code, 2);
    // A broken GRUB file is named with its line, and nothing is written.
    fs::write(
        r.join("etc/default/grub"),
        "A=1\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\n",
    )
    .unwrap();
    let (code, _, err) = passthru(r, &["config", "0b:00", "--apply"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("/etc/default/grub:2: unterminated double quote"),
        "{err}"
    );
    assert!(!r.join("var/lib/passthru").exists());
}

#[test]
fn x_vga_drops_disable_vga_and_flags_the_users_line() {
    // docs/rules.md: disable_vga=1 with x-vga=1 is contradictory.
    let s = proxmox_amd();
    let root = build_root(&s);
    let (code, out, err) = passthru(
        root.path(),
        &["config", "0b:00", "--x-vga", "--guest", "proxmox"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("+options vfio-pci disable_vga=1"), "{out}");
    assert!(out.contains("hostpci0: 0000:0b:00,pcie=1,x-vga=1"), "{out}");
    assert!(
        out.contains("[vga-conflict] /etc/modprobe.d/vfio.conf:1: disable_vga=1 contradicts x-vga"),
        "{out}"
    );
}

#[test]
fn verdicts_are_carried_verbatim() {
    // The warnings masked in the goldens are exactly what `iommu-groups` says.
    use passthru_iommu_groups::{check_bdfs, Host};
    let s = proxmox_amd();
    let root = build_root(&s);
    let host = Host::load(root.path()).unwrap();
    let bdfs: Vec<Bdf> = ["0b:00.0", "0b:00.1"].iter().map(|b| bdf(b)).collect();
    let report = check_bdfs(&host, &bdfs).unwrap();
    let (code, out, err) = passthru(root.path(), &["config", "0b:00", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let carried: Vec<(String, String)> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["code"].as_str().unwrap().to_string(),
                w["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut n = 0;
    for d in &report.devices {
        for f in &d.findings {
            if f.severity >= passthru_iommu_groups::Severity::Warn && f.code.name() != "host-driver"
            {
                let want = (
                    f.code.name().to_string(),
                    format!("{}: {}", d.bdf, f.message),
                );
                assert!(carried.contains(&want), "{want:?} not carried: {carried:?}");
                n += 1;
            }
        }
    }
    // docs/rules.md: the Fiji reset bug is among them.
    assert!(
        n > 0
            && carried
                .iter()
                .any(|(c, m)| c == "reset-bug" && m.starts_with("0000:0b:00.0: "))
    );
}

#[test]
fn intel_vtd_already_active_without_the_parameter_needs_no_intel_iommu_on() {
    // VT-d active (dmar0, groups) while /proc/cmdline has no intel_iommu=on: the kernel
    // turns it on by itself, so the merge adds only iommu=pt.
    let gpu = |f: Fixture| {
        f.device(
            FixtureDevice::root_port(bdf("00:01.0"), 0x01)
                .driver("pcieport")
                .group(1),
        )
        .device(
            FixtureDevice::gpu(bdf("01:00.0"), 0x10de, 0x2503)
                .parent(bdf("00:01.0"))
                .driver("nvidia")
                .group(2),
        )
        .device(
            FixtureDevice::hdmi_audio(bdf("01:00.1"), 0x10de, 0x228e)
                .parent(bdf("00:01.0"))
                .driver("snd_hda_intel")
                .group(2),
        )
    };
    let grub = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n";
    for (cmdline, want) in [
        ("root=/dev/sda1 ro quiet", false),
        ("root=/dev/sda1 ro quiet intel_iommu=on", true),
    ] {
        let host = gpu(Fixture::new(CpuVendor::Intel, IommuKind::Intel))
            .cmdline(cmdline)
            .file("etc/default/grub", grub);
        let d = tempfile::tempdir().unwrap();
        host.write(d.path()).unwrap();
        let (code, out, err) = passthru(d.path(), &["config", "01:00", "--json"]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let add: Vec<&str> = v["kernel_params"]["add"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(add.contains(&"intel_iommu=on"), want, "{cmdline}: {add:?}");
        assert!(add.contains(&"iommu=pt"));
    }
}

#[test]
fn comma_joined_devices_go_to_one_guest() {
    let s = proxmox_amd();
    let root = build_root(&s);
    let (code, out, err) = passthru(
        root.path(),
        &["config", "05:00,0b:00", "--guest", "proxmox"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\nhostpci0: 0000:05:00,pcie=1\n")
            && out.contains("\nhostpci1: 0000:0b:00,pcie=1\n"),
        "{out}"
    );
    assert_eq!(out.matches("\nmachine: q35\n").count(), 1, "{out}");
}

/// A copy of a committed fixture root (symbolic links kept as links), so writes never
/// touch the repository.
fn fixture_copy(name: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dst = to.join(e.file_name());
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), &dst).unwrap();
            } else if ft.is_dir() {
                fs::create_dir_all(&dst).unwrap();
                copy(&e.path(), &dst);
            } else {
                fs::copy(e.path(), &dst).unwrap();
            }
        }
    }
    let d = tempfile::tempdir().unwrap();
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
        d.path(),
    );
    d
}

/// Every `options vfio-pci ... ids=` line of a modprobe.d text.
fn ids_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            t.first() == Some(&"options")
                && t.get(1).is_some_and(|m| m.replace('-', "_") == "vfio_pci")
                && t.iter().any(|o| o.starts_with("ids="))
        })
        .collect()
}

// Issue "Never break a working host", item 1: scenario-amd's own vfio.conf binds
// 10de:1187,10de:0e0a,1002:7300,1002:aae8; `config 0b:00 --apply` appended a second
// `options vfio-pci ids=1002:7300,1002:aae8`, and modprobe keeps the last ids=, so the
// GTX 760 (05:00) would have stopped binding. Now the user's line stays the only one.
#[test]
fn apply_never_writes_a_second_ids_line_over_the_users() {
    let root = fixture_copy("scenario-amd");
    let r = root.path();
    let conf = r.join("etc/modprobe.d/vfio.conf");
    let users = fs::read_to_string(&conf).unwrap();
    let (code, out, err) = passthru(r, &["config", "0b:00", "--apply"]);
    assert_eq!(code, 0, "{err}\n{out}");
    let after = fs::read_to_string(&conf).unwrap();
    assert!(
        after.starts_with(&users),
        "the user's bytes moved:\n{after}"
    );
    assert_eq!(
        ids_lines(&after),
        vec!["options vfio-pci ids=10de:1187,10de:0e0a,1002:7300,1002:aae8 disable_vga=1"],
        "{after}"
    );
    assert!(!out.contains("would stop binding"), "{out}");
    // The GTX's functions are still claimed by the one ids= line, and named as such.
    assert!(
        after.contains("0000:05:00.0 10de:1187") && after.contains("0000:0b:00.1 1002:aae8"),
        "{after}"
    );
}

// Item 1: a device the user's ids= line does not list is a conflict with the exact fix,
// and --apply writes nothing (no second ids= either).
#[test]
fn an_id_missing_from_the_users_line_is_refused_with_the_fixed_line() {
    let root = fixture_copy("scenario-amd");
    let r = root.path();
    let conf = r.join("etc/modprobe.d/vfio.conf");
    fs::write(
        &conf,
        "options vfio-pci ids=10de:1187,10de:0e0a disable_vga=1\n",
    )
    .unwrap();
    let (code, out, _) = passthru(r, &["config", "0b:00"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("[ids-conflict] /etc/modprobe.d/vfio.conf:1:"),
        "{out}"
    );
    let (code, _, err) = passthru(r, &["config", "0b:00", "--apply"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("it lacks 1002:7300,1002:aae8"), "{err}");
    assert!(
        err.contains(
            "`options vfio-pci ids=10de:1187,10de:0e0a,1002:7300,1002:aae8 disable_vga=1`"
        ),
        "{err}"
    );
    assert!(
        !r.join("var/lib/passthru").exists(),
        "something was written"
    );
    assert_eq!(
        fs::read_to_string(&conf).unwrap(),
        "options vfio-pci ids=10de:1187,10de:0e0a disable_vga=1\n"
    );
}

fn block_ids(text: &str) -> Vec<String> {
    let inside = text
        .split_once(passthru_config_gen::block::BEGIN)
        .map_or("", |(_, b)| b);
    ids_lines(inside)
        .iter()
        .map(|l| {
            l.split_whitespace()
                .find_map(|o| o.strip_prefix("ids="))
                .unwrap()
                .to_string()
        })
        .collect()
}

// Item 1: `config 0b:00 --apply` then `config 05:00 --apply` dropped 0b:00 from
// passthru's own block. Now the block keeps every id it bound; `--remove` takes one out.
#[test]
fn a_second_device_is_added_to_the_block_and_remove_takes_one_out() {
    let root = fixture_copy("scenario-amd");
    let r = root.path();
    let conf = r.join("etc/modprobe.d/vfio.conf");
    fs::remove_file(&conf).unwrap();
    let (code, _, err) = passthru(r, &["config", "0b:00", "--apply"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        block_ids(&fs::read_to_string(&conf).unwrap()),
        ["1002:7300,1002:aae8"]
    );
    let (code, _, err) = passthru(r, &["config", "05:00", "--apply"]);
    assert_eq!(code, 0, "{err}");
    let both = fs::read_to_string(&conf).unwrap();
    assert_eq!(
        block_ids(&both),
        ["1002:7300,1002:aae8,10de:0e0a,10de:1187"],
        "{both}"
    );
    assert!(
        both.contains("softdep amdgpu pre: vfio-pci"),
        "0b:00's softdep lost: {both}"
    );
    let (code, _, err) = passthru(r, &["config", "--remove", "05:00", "--apply"]);
    assert_eq!(code, 0, "{err}");
    let one = fs::read_to_string(&conf).unwrap();
    assert_eq!(block_ids(&one), ["1002:7300,1002:aae8"], "{one}");
    assert!(!one.contains("nouveau"), "{one}");
    // A slot both requested and removed, or absent, is an input error.
    let (code, _, err) = passthru(r, &["config", "0b:00", "--remove", "0b:00"]);
    assert_eq!(code, 2);
    assert!(err.contains("both requested and to be removed"), "{err}");
    let (code, _, err) = passthru(r, &["config", "--remove", "0c:00"]);
    assert_eq!(code, 2);
    assert!(err.contains("0c:00"), "{err}");
}

// Item 3: `config --rollback` after the user edited /etc/default/grub following an
// apply silently discarded the edit. Now it refuses, naming the file; --force restores
// and keeps the user's version in the backup set.
#[test]
fn rollback_refuses_to_discard_an_edit_made_after_the_apply() {
    let root = fixture_copy("scenario-amd");
    let r = root.path();
    let grub = r.join("etc/default/grub");
    let before = fs::read_to_string(&grub).unwrap();
    let (code, _, err) = passthru(r, &["config", "0b:00", "--apply"]);
    assert_eq!(code, 0, "{err}");
    let edited = format!(
        "{}GRUB_TIMEOUT_STYLE=menu\n",
        fs::read_to_string(&grub).unwrap()
    );
    fs::write(&grub, &edited).unwrap();
    let (code, out, err) = passthru(r, &["config", "--rollback"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("/etc/default/grub") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&grub).unwrap(),
        edited,
        "the edit was touched"
    );
    // Nothing else was rolled back either.
    assert!(fs::read_to_string(r.join("etc/modprobe.d/vfio.conf"))
        .unwrap()
        .contains(passthru_config_gen::block::BEGIN));
    let (code, out, err) = passthru(r, &["config", "--rollback", "--force", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::read_to_string(&grub).unwrap(), before);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kept = &v["rollback"]["kept"][0];
    assert_eq!(kept["path"], "/etc/default/grub", "{v}");
    assert_eq!(
        fs::read_to_string(kept["copy"].as_str().unwrap()).unwrap(),
        edited
    );
}

/// Run passthru, killing it after `secs`: a hang is a failure, not a stuck test.
fn passthru_timed(root: &Path, args: &[&str], secs: u64) -> (i32, String) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_passthru"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (st.code().unwrap_or(-1), err);
        }
        if start.elapsed().as_secs() >= secs {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("passthru {args:?} still running after {secs} s (hung)");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

// Item 4: a FIFO at etc/default/grub hung `config` for ever; a directory there was
// silently "no GRUB". Both are now named, and nothing is written.
#[test]
fn fifo_or_directory_at_a_config_path_is_named_never_read() {
    let root = fixture_copy("scenario-amd");
    let r = root.path();
    let grub = r.join("etc/default/grub");
    fs::remove_file(&grub).unwrap();
    let st = Command::new("mkfifo").arg(&grub).status().unwrap();
    assert!(st.success(), "mkfifo (coreutils) is needed");
    for args in [&["config", "0b:00"][..], &["config", "0b:00", "--apply"]] {
        let (code, err) = passthru_timed(r, args, 20);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("etc/default/grub") && err.contains("FIFO"),
            "{err}"
        );
    }
    fs::remove_file(&grub).unwrap();
    fs::create_dir(&grub).unwrap();
    let (code, err) = passthru_timed(r, &["config", "0b:00", "--apply"], 20);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("etc/default/grub") && err.contains("a directory"),
        "{err}"
    );
    // A FIFO among the modprobe.d drop-ins is named too.
    fs::remove_dir(&grub).unwrap();
    fs::write(&grub, "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n").unwrap();
    let fifo = r.join("etc/modprobe.d/zz.conf");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (code, err) = passthru_timed(r, &["config", "0b:00", "--apply"], 20);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("etc/modprobe.d/zz.conf"), "{err}");
    fs::remove_file(&fifo).unwrap();
    // A sysfs attribute that is a FIFO (under a snapshot root) is never opened: an
    // absent fact with a note naming it, and the dry run goes on.
    let boot_vga = fs::canonicalize(r.join("sys/bus/pci/devices/0000:06:00.0"))
        .unwrap()
        .join("boot_vga");
    let _ = fs::remove_file(&boot_vga);
    assert!(Command::new("mkfifo")
        .arg(&boot_vga)
        .status()
        .unwrap()
        .success());
    let (code, err) = passthru_timed(r, &["config", "0b:00"], 20);
    assert!(code == 0 || code == 1, "{err}");
    assert!(
        err.contains("0000:06:00.0/boot_vga") && err.contains("FIFO"),
        "{err}"
    );
    assert!(!r.join("var/lib/passthru").exists());
}

// Item 5: `--remove-param iommu=pt` after an apply printed `= iommu=pt` and left
// passthru's comment for it behind; removing what passthru adds is now honoured for the
// optional iommu=pt (comment and token both go) and refused for what it needs.
#[test]
fn removing_a_parameter_passthru_added_takes_its_comment_along() {
    let root = fixture_copy("scenario-amd");
    let r = root.path();
    let grub = r.join("etc/default/grub");
    let (code, _, err) = passthru(r, &["config", "0b:00", "--apply"]);
    assert_eq!(code, 0, "{err}");
    assert!(fs::read_to_string(&grub)
        .unwrap()
        .contains("# passthru: iommu=pt: "));
    let (code, out, err) = passthru(
        r,
        &["config", "0b:00", "--remove-param", "iommu=pt", "--apply"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  - iommu=pt  (removal requested)"), "{out}");
    assert!(!out.contains("= iommu=pt"), "{out}");
    let text = fs::read_to_string(&grub).unwrap();
    assert!(!text.contains("iommu=pt"), "orphan left:\n{text}");
    // The boot-display parameter's comment stays with its token (a 6.8 kernel:
    // initcall_blacklist=sysfb_init, drivers/firmware/sysfb.c).
    assert!(
        text.contains("# passthru: initcall_blacklist=sysfb_init: "),
        "{text}"
    );
    // That is what this request needs: removing it too is refused.
    let (code, _, err) = passthru(
        r,
        &[
            "config",
            "0b:00",
            "--remove-param",
            "initcall_blacklist=sysfb_init",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("cannot be removed at the same time"), "{err}");
}

// Item 5: a comment of an earlier run stays while its token stays (config 05:00 after
// config 0b:00 keeps the boot-display reason for initcall_blacklist=sysfb_init).
#[test]
fn earlier_comments_stay_with_their_tokens() {
    let root = fixture_copy("scenario-amd");
    let r = root.path();
    fs::remove_file(r.join("etc/modprobe.d/vfio.conf")).unwrap();
    let grub = r.join("etc/default/grub");
    assert_eq!(passthru(r, &["config", "0b:00", "--apply"]).0, 0);
    let once = fs::read_to_string(&grub).unwrap();
    assert_eq!(passthru(r, &["config", "05:00", "--apply"]).0, 0);
    assert_eq!(fs::read_to_string(&grub).unwrap(), once);
}

// Item 5: `--acs-override bogus` was accepted and reported as set although the old
// value stayed; `--remove-param nonexistent=1` was silent.
#[test]
fn acs_override_values_are_checked_and_a_kept_old_value_is_said() {
    let root = fixture_copy("scenario-amd");
    let r = root.path();
    let (code, _, err) = passthru(
        r,
        &["config", "0b:00", "--acs-override", "bogus", "--apply"],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("pcie_acs_override=bogus") && err.contains("id:vvvv:dddd"),
        "{err}"
    );
    assert!(!r.join("var/lib/passthru").exists());
    // The fixture's grub already has pcie_acs_override=downstream,multifunction.
    let (code, out, err) = passthru(r, &["config", "0b:00", "--acs-override", "multifunction"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("  ! pcie_acs_override=multifunction  (not set: the command line keeps pcie_acs_override=downstream,multifunction"),
        "{out}"
    );
    assert!(!out.contains("= pcie_acs_override=multifunction"), "{out}");
    // Replacing it takes both flags, and then the new value is added.
    let (code, out, err) = passthru(
        r,
        &[
            "config",
            "0b:00",
            "--acs-override",
            "multifunction",
            "--remove-param",
            "pcie_acs_override=downstream,multifunction",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  + pcie_acs_override=multifunction"), "{out}");
    let (code, out, err) = passthru(r, &["config", "0b:00", "--remove-param", "nonexistent=1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "[remove-absent] /etc/default/grub: nonexistent=1 is not on the kernel command line"
        ),
        "{out}"
    );
    let (code, _, err) = passthru(r, &["config", "0b:00", "--remove-param", "a b"]);
    assert_eq!(code, 2);
    assert!(err.contains("\"a b\""), "{err}");
}

// Merging: a line the user put inside passthru's block after an apply would be lost
// when the block is rewritten; it is named with its fix and nothing is written.
#[test]
fn a_line_added_inside_passthrus_block_is_not_overwritten() {
    let root = fixture_copy("scenario-amd");
    let r = root.path();
    let conf = r.join("etc/modprobe.d/vfio.conf");
    fs::remove_file(&conf).unwrap();
    assert_eq!(passthru(r, &["config", "0b:00", "--apply"]).0, 0);
    let text = fs::read_to_string(&conf).unwrap();
    let edited = text.replace(
        "# <<< passthru",
        "options snd_hda_intel power_save=0\n# <<< passthru",
    );
    fs::write(&conf, &edited).unwrap();
    let (code, out, err) = passthru(r, &["config", "05:00", "--apply"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("[block-edited] /etc/modprobe.d/vfio.conf:")
            && err.contains("`options snd_hda_intel power_save=0` is inside passthru's block"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&conf).unwrap(), edited);
    // Moved above the block, it is the user's line like any other.
    let moved = format!(
        "options snd_hda_intel power_save=0\n{}",
        edited.replace("options snd_hda_intel power_save=0\n", "")
    );
    fs::write(&conf, &moved).unwrap();
    let (code, _, err) = passthru(r, &["config", "05:00", "--apply"]);
    assert_eq!(code, 0, "{err}");
    assert!(fs::read_to_string(&conf)
        .unwrap()
        .starts_with("options snd_hda_intel power_save=0\n"));
}

// Item 1 with --remove: a device the user's own ids= line binds cannot be taken off by
// passthru without rewriting that line, so it says which line to write instead.
#[test]
fn remove_of_a_device_the_users_line_binds_gives_the_line_to_write() {
    let root = fixture_copy("scenario-amd");
    let r = root.path();
    let conf = r.join("etc/modprobe.d/vfio.conf");
    let users = fs::read_to_string(&conf).unwrap();
    let (code, _, err) = passthru(r, &["config", "--remove", "05:00", "--apply"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("it still lists 10de:1187,10de:0e0a, which --remove takes off")
            && err.contains("`options vfio-pci ids=1002:7300,1002:aae8 disable_vga=1`"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&conf).unwrap(), users);
}

/// Config's findings say what they rest on, as check's do: one whose message opens
/// with a device address is about that device, and one whose message opens with a
/// file (`/etc/modules:5: ...`) quotes that file in its evidence. Over every config
/// golden plan.
#[test]
fn config_findings_carry_their_device_and_evidence() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/config");
    let mut seen = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let plan = e.unwrap().path().join("plan.json");
        let Ok(text) = fs::read_to_string(&plan) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for w in v["warnings"].as_array().into_iter().flatten() {
            let msg = w["message"].as_str().unwrap();
            let head = msg.split(": ").next().unwrap_or("");
            if let Ok(bdf) = head.parse::<Bdf>() {
                assert_eq!(
                    w["device"].as_str(),
                    Some(bdf.to_string().as_str()),
                    "{}: {msg}",
                    plan.display()
                );
                seen += 1;
            }
            if head.starts_with('/') {
                let file = head.split(':').next().unwrap();
                let ev = w["evidence"].as_array().unwrap();
                assert!(
                    ev.iter().any(|e| e.as_str().unwrap().starts_with(file)),
                    "{}: no evidence from {file}: {w}",
                    plan.display()
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 8, "only {seen} findings checked");
}
