//! The user's scenario from docs/rules.md (Ryzen 7 3700X Proxmox host, GTX 760 at
//! 05:00, Fiji at 0b:00, the hand-made /etc files): what the verdicts must say.

mod common;

use common::*;
use passthru_iommu_groups::fixture::scenario_amd;
use passthru_iommu_groups::reset::{self, ResetMethod};
use passthru_iommu_groups::{check, Code, CpuVendor, DeviceSpec, Host, Report, Severity, Verdict};
use passthru_pci_ids::Bdf;

/// The scenario root: the committed tree (checked equal to the generator's output
/// below), or a fresh one while blessing.
fn host() -> (tempfile::TempDir, Host) {
    let dir = tempfile::tempdir().unwrap();
    let root = if bless() {
        scenario_amd().write(dir.path()).unwrap();
        dir.path().to_path_buf()
    } else {
        repo().join("tests/fixtures/scenario-amd")
    };
    let h = Host::load(root).unwrap();
    assert!(h.notes.is_empty(), "{:?}", h.notes);
    (dir, h)
}

fn b(s: &str) -> Bdf {
    s.parse().unwrap()
}

fn run(h: &Host, specs: &[&str]) -> Report {
    let specs: Vec<DeviceSpec> = specs.iter().map(|s| s.parse().unwrap()).collect();
    check(h, &specs).unwrap()
}

fn codes(r: &Report, bdf: &str) -> Vec<(Code, Severity)> {
    r.devices
        .iter()
        .find(|d| d.bdf == b(bdf))
        .unwrap()
        .findings
        .iter()
        .map(|f| (f.code, f.severity))
        .collect()
}

/// The committed tree tests/fixtures/scenario-amd is what the generator writes
/// (`PASSTHRU_BLESS=1` regenerates it).
#[test]
fn committed_scenario_tree_matches_generator() {
    if bless() {
        bless_tree("scenario-amd", &scenario_amd());
    }
    let dir = tempfile::tempdir().unwrap();
    scenario_amd().write(dir.path()).unwrap();
    let fresh = Host::load(dir.path()).unwrap();
    let committed = Host::load(repo().join("tests/fixtures/scenario-amd")).unwrap();
    assert_eq!(committed, fresh);
}

#[test]
fn host_facts_of_the_scenario() {
    let (_d, h) = host();
    assert_eq!(h.cpu_vendor, CpuVendor::Amd);
    assert!(h.iommu.active() && h.iommu.ivrs_table && !h.iommu.dmar_table);
    assert!(h.boot.proxmox);
    assert!(h.boot.file("/etc/default/grub").is_some_and(|t| t.contains(
        "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet amd_iommu=on pcie_acs_override=downstream,multifunction video=efifb:off\""
    )));
    assert_eq!(h.boot.os_release["ID"], "debian");
    assert!(h.boot.has("/usr/bin/pveversion"));
    assert!(h.boot.unreadable.is_empty(), "{:?}", h.boot.unreadable);
    assert_eq!(
        h.boot.vfio_pci_ids(),
        ["10de:1187", "10de:0e0a", "1002:7300", "1002:aae8"]
    );
    assert_eq!(h.boot.blacklisted(), ["radeon", "nouveau", "nvidia"]);
    assert_eq!(h.vfio_pci_params["disable_vga"], "Y");
    // The AMD IOMMU's own function has no group.
    assert!(h.device(b("00:00.2")).unwrap().iommu_group.is_none());
}

/// Default `check` looks at display devices and brings their companion functions.
#[test]
fn default_check_is_display_devices_with_companions() {
    let (_d, h) = host();
    let r = run(&h, &[]);
    let got: Vec<Bdf> = r.devices.iter().map(|d| d.bdf).collect();
    assert_eq!(
        got,
        [b("05:00.0"), b("05:00.1"), b("0b:00.0"), b("0b:00.1")]
    );
    // Requesting function 0 by BDF, by slot or by ids gives the same set.
    for spec in ["0b:00.0", "0b:00", "1002:7300"] {
        let r = run(&h, &[spec]);
        let got: Vec<Bdf> = r.devices.iter().map(|d| d.bdf).collect();
        assert_eq!(got, [b("0b:00.0"), b("0b:00.1")], "{spec}");
        assert!(codes(&r, "0b:00.0").contains(&(Code::CompanionFunction, Severity::Info)));
    }
}

/// docs/rules.md bus reset: "a GPU with its HDMI audio function never gets `bus`";
/// the enumeration-time `reset_method` listing `bus` is stale.
#[test]
fn gpu_with_audio_function_never_gets_bus_reset() {
    let (_d, h) = host();
    for gpu in ["05:00.0", "0b:00.0"] {
        let d = h.device(b(gpu)).unwrap();
        assert_eq!(d.reset_method.as_deref(), Some(&["bus".to_string()][..]));
        let ra = reset::analyse(&h, d);
        assert!(ra.methods.is_empty(), "{gpu}: {:?}", ra.methods);
        let hot = ra.hot_reset.unwrap();
        assert!(hot.slot_only);
        assert_eq!(hot.affected.len(), 2);
    }
}

/// docs/rules.md NO_PM_RESET: every ATI/AMD VGA device off the root bus; Fiji's audio
/// function (class 0403) keeps its PM reset.
#[test]
fn no_pm_reset_quirk_for_amd_vga_only() {
    let (_d, h) = host();
    let vga = reset::analyse(&h, h.device(b("0b:00.0")).unwrap());
    assert!(vga
        .unavailable
        .iter()
        .any(|r| r.method == ResetMethod::Pm && r.why.contains("NO_PM_RESET")));
    let audio = reset::analyse(&h, h.device(b("0b:00.1")).unwrap());
    assert_eq!(audio.methods, vec![ResetMethod::Pm]);
}

/// docs/rules.md pm: PMCSR No_Soft_Reset set means no PM reset (the GK104 functions).
#[test]
fn pm_reset_needs_no_soft_reset_clear() {
    let (_d, h) = host();
    let ra = reset::analyse(&h, h.device(b("05:00.1")).unwrap());
    assert!(ra
        .unavailable
        .iter()
        .any(|r| r.method == ResetMethod::Pm && r.why.contains("No_Soft_Reset")));
}

/// docs/rules.md NO_FLR quirk: AMD 149c (Matisse USB) advertises FLR, the kernel
/// disables it; PM and bus remain.
#[test]
fn no_flr_quirk_for_matisse_usb() {
    let (_d, h) = host();
    let d = h.device(b("06:00.0")).unwrap();
    assert!(d.facts.as_ref().unwrap().pcie.unwrap().flr);
    let ra = reset::analyse(&h, d);
    assert_eq!(ra.methods, vec![ResetMethod::Pm, ResetMethod::Bus]);
    // The I211 next to it keeps FLR.
    let nic = reset::analyse(&h, h.device(b("04:00.0")).unwrap());
    assert_eq!(
        nic.methods,
        vec![ResetMethod::Flr, ResetMethod::Pm, ResetMethod::Bus]
    );
}

/// Issue `no-reset`: whole-slot hot reset is a warning when every function is
/// requested, a failure when a function of the slot is left out.
#[test]
fn whole_slot_hot_reset_needs_every_function_in_the_request() {
    let (_d, h) = host();
    let whole = run(&h, &["05:00"]);
    assert!(codes(&whole, "05:00.0").contains(&(Code::NoReset, Severity::Warn)));
    let alone = run(&h, &["05:00.1"]);
    assert_eq!(alone.devices.len(), 1);
    assert!(codes(&alone, "05:00.1").contains(&(Code::NoReset, Severity::Fail)));
    assert_eq!(alone.devices[0].verdict, Verdict::Fail);
}

/// Issue `reset-bug` / docs/rules.md: Fiji is not covered by vendor-reset: warn, and say so.
#[test]
fn fiji_reset_bug_is_not_covered_by_vendor_reset() {
    let (_d, h) = host();
    let r = run(&h, &["0b:00"]);
    let d = &r.devices[0];
    let f = d
        .findings
        .iter()
        .find(|f| f.code == Code::ResetBug)
        .unwrap();
    assert_eq!(f.severity, Severity::Warn);
    assert!(
        f.message.contains("vendor-reset does not cover"),
        "{}",
        f.message
    );
    // The GTX 760 has no AMD reset bug.
    assert!(!codes(&run(&h, &["05:00"]), "05:00.0")
        .iter()
        .any(|c| c.0 == Code::ResetBug));
}

/// Issue `host-driver` / docs/rules.md: amdgpu grabbed Fiji although vfio.conf lists
/// its id, because only radeon is blacklisted and there is no softdep.
#[test]
fn amdgpu_bound_fiji_gets_softdep_advice() {
    let (_d, h) = host();
    let r = run(&h, &["0b:00"]);
    let f = r.devices[0]
        .findings
        .iter()
        .find(|f| f.code == Code::HostDriver)
        .unwrap();
    assert!(
        f.message.contains("softdep amdgpu pre: vfio-pci"),
        "{}",
        f.message
    );
    assert!(f.message.contains("does not name amdgpu"), "{}", f.message);
    // The GTX 760 functions are on vfio-pci: no host-driver finding.
    assert!(!codes(&run(&h, &["05:00"]), "05:00.0")
        .iter()
        .any(|c| c.0 == Code::HostDriver));
}

/// Issue `boot-vga`: Fiji is the boot display; the user's `video=efifb:off` does not
/// keep simpledrm off on this 6.8 kernel (sysfb_init registers the framebuffer from
/// 5.15 on, drivers/firmware/sysfb.c), so the message says so and names
/// `initcall_blacklist=sysfb_init`.
#[test]
fn boot_vga_warns_that_efifb_off_is_not_enough_on_6_8() {
    let (_d, h) = host();
    let r = run(&h, &["0b:00.0"]);
    let f = r.devices[0]
        .findings
        .iter()
        .find(|f| f.code == Code::BootVga)
        .unwrap();
    assert_eq!(f.severity, Severity::Warn);
    assert!(
        f.message.contains("does not stop simpledrm"),
        "{}",
        f.message
    );
    assert!(f.message.contains("`initcall_blacklist=sysfb_init`"));
    assert!(!f.message.contains("already on the command line"));
}

/// The scenario's verdicts: both GPUs warn (no failure), the exit status would be 0.
#[test]
fn scenario_verdicts() {
    let (_d, h) = host();
    let r = run(&h, &[]);
    assert!(r.devices.iter().all(|d| d.verdict == Verdict::Warn));
    assert_eq!(r.worst(), Verdict::Warn);
    assert!(r.host.findings.is_empty());
}

/// docs/rules.md AMD reset bug: Polaris is covered by vendor-reset (warn, with the
/// udev `device_specific` advice; info once `reset_method` lists device_specific);
/// Hawaii gets QEMU's own reset quirk (info).
#[test]
fn reset_bug_families_and_their_remedies() {
    use passthru_iommu_groups::fixture::{Fixture, FixtureDevice, IommuKind};
    let rp = FixtureDevice::root_port(b("00:01.0"), 1).group(1);
    let rp2 = FixtureDevice::root_port(b("00:02.0"), 2).group(3);
    let rp3 = FixtureDevice::root_port(b("00:03.0"), 3).group(5);
    let t = tempfile::tempdir().unwrap();
    Fixture::new(CpuVendor::Amd, IommuKind::Amd)
        .device(rp)
        .device(rp2)
        .device(rp3)
        // Polaris 10 (RX 480/580), without and with vendor-reset active.
        .device(
            FixtureDevice::gpu(b("01:00.0"), 0x1002, 0x67df)
                .parent(b("00:01.0"))
                .group(2),
        )
        .device(
            FixtureDevice::gpu(b("02:00.0"), 0x1002, 0x67df)
                .parent(b("00:02.0"))
                .group(4)
                .reset_method("device_specific bus"),
        )
        // Hawaii (R9 290).
        .device(
            FixtureDevice::gpu(b("03:00.0"), 0x1002, 0x67b1)
                .parent(b("00:03.0"))
                .group(6),
        )
        .write(t.path())
        .unwrap();
    let h = Host::load(t.path()).unwrap();
    let find = |bdf: &str| {
        let r = run(&h, &[bdf]);
        r.devices[0]
            .findings
            .iter()
            .find(|f| f.code == Code::ResetBug)
            .cloned()
            .unwrap()
    };
    let polaris = find("01:00.0");
    assert_eq!(polaris.severity, Severity::Warn);
    assert!(polaris.message.contains("vendor-reset"));
    assert!(polaris.message.contains("install it"));
    // The udev rule vendor-reset's README gives, ids in lowercase hex.
    assert!(
        polaris.message.contains(
            "ATTR{vendor}==\"0x1002\", ATTR{device}==\"0x67df\", ATTR{reset_method}=\"device_specific\""
        ),
        "{}",
        polaris.message
    );
    assert!(polaris
        .evidence
        .iter()
        .any(|e| e.contains("vendor_reset is not loaded")));
    assert_eq!(find("02:00.0").severity, Severity::Info);
    // With the module loaded but not selected: only the rule is missing.
    let mut loaded = h.clone();
    loaded.modules = Some(vec!["vendor_reset".into()]);
    let r = check(&loaded, &["01:00.0".parse::<DeviceSpec>().unwrap()]).unwrap();
    let f = r.devices[0]
        .findings
        .iter()
        .find(|f| f.code == Code::ResetBug)
        .unwrap();
    assert!(
        f.message.contains("vendor-reset is loaded"),
        "{}",
        f.message
    );
    assert!(!f.message.contains("install it"), "{}", f.message);
    let hawaii = find("03:00.0");
    assert_eq!(hawaii.severity, Severity::Info);
    assert!(hawaii.message.contains("QEMU"));
}

/// A NIC on a host driver where modprobe.d already binds other ids to vfio-pci: the
/// advice is never a second `ids=` line (modprobe.d(5): the last `ids=` wins, so the
/// GTX 760 and the Fury would stop binding), but `passthru config`, which merges.
#[test]
fn host_driver_advice_never_adds_a_second_ids_line() {
    let (_d, h) = host();
    let r = check(&h, &["04:00.0".parse::<DeviceSpec>().unwrap()]).unwrap();
    let f = r.devices[0]
        .findings
        .iter()
        .find(|f| f.code == Code::HostDriver)
        .expect("host-driver");
    assert!(
        f.message.contains("passthru config 0000:04:00"),
        "{}",
        f.message
    );
    assert!(
        f.message
            .contains("10de:1187,10de:0e0a,1002:7300,1002:aae8"),
        "{}",
        f.message
    );
    assert!(
        !f.message.contains("Add `options vfio-pci ids="),
        "{}",
        f.message
    );
}
