//! The host findings (`no-intremap`, `no-kvm`, `in-vm`, `lockdown`, `phys-bits`,
//! `framebuffer`, `device-busy`) on fixture roots built from the committed
//! `tests/fixtures/vm-intel-vga-audio` (a QEMU q35 guest with an Intel vIOMMU, a
//! bochs VGA at 01:00.0 and HDMI-style audio at 01:00.1) with one fact changed as
//! Linux shows it. Each case has a negative twin with the healthy fact. Golden
//! check JSON: tests/golden/host-findings/CASE.check.json (`PASSTHRU_BLESS=1`).
//! Every case root is also snapshotted and must replay `check` byte for byte.

#[path = "cli_list_check_support/mod.rs"]
mod cli_common;

use cli_common::*;
use std::path::{Path, PathBuf};

const BASE: &str = "tests/fixtures/vm-intel-vga-audio";
/// The AMD-Vi twin of [`BASE`] (the same topology under QEMU's `amd-iommu`, captured
/// with the AMD-Vi registers), for the `phys-bits-amd*` cases.
const BASE_AMD: &str = "tests/fixtures/vm-amd-vga-audio-efr";

fn base(case: &str) -> &'static str {
    if case.starts_with("phys-bits-amd") {
        BASE_AMD
    } else {
        BASE
    }
}
const ARGS: [&str; 4] = ["check", "--json", "0000:01:00.0", "0000:01:00.1"];

/// A change to the base root.
enum Op {
    /// Write a file (parents created).
    File(&'static str, Vec<u8>),
    /// Make a symbolic link.
    Link(&'static str, &'static str),
    /// Replace every occurrence of a text in a file.
    Edit(&'static str, &'static str, &'static str),
}

use Op::*;

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// `/proc/interrupts` (kernel/irq/proc.c): a header of CPU columns, then per interrupt
/// the counts, the chip name, the hardware irq with its trigger, and the actions.
/// With remapping the MSI and IO-APIC chips carry `IR-`
/// (drivers/iommu/intel/irq_remapping.c names them so).
fn interrupts(ir: bool) -> Vec<u8> {
    let p = if ir { "IR-" } else { "" };
    text(&format!(
        "           CPU0       CPU1       \n\
         \x20 1:          0          9  {p}IO-APIC    1-edge      i8042\n\
         \x20 8:          0          0  {p}IO-APIC    8-edge      rtc0\n\
         \x20 9:          0          0  {p}IO-APIC    9-fasteoi   acpi\n\
         \x2024:          0         27  {p}PCI-MSIX-0000:00:1f.2    0-edge      ahci[0000:00:1f.2]\n\
         \x2025:        312          0  {p}PCI-MSI-0000:01:00.1    0-edge      snd_hda_intel:card0\n\
         NMI:          0          0   Non-maskable interrupts\n"
    ))
}

/// VT-d registers as drivers/iommu/intel/iommu.c prints them (`%llx`). `cap`
/// d2008c40660462 is a Skylake client's (MGAW field 0x26: 39 bits); `ecap` f050d2 is
/// its f050da with bit 3 (interrupt remapping) cleared.
const CAP_39: &str = "d2008c40660462\n";
const CAP_48: &str = "d2008c406f0462\n";
const ECAP_NO_IR: &str = "f050d2\n";
/// The AMD-Vi unit's registers as [`BASE_AMD`]'s 6.12 guest under QEMU 7.2's
/// `amd-iommu` printed them: `cap` 1f03000f has bit 27 (EFR supported); `features` is
/// `EFR:EFR2` (drivers/iommu/amd/init.c since v6.7), `29d3:0`: HATS (bits 11:10) = 2,
/// six levels, 64-bit IOVAs. The same EFR with HATS = 0: a four-level host page
/// table, 48-bit IOVAs.
const AMD_FEATURES_HATS4: &str = "21d3:0\n";
/// The unit's `features` (`/sys/class/iommu/ivhd0` links to its directory).
const AMD_FEATURES_PATH: &str =
    "sys/devices/pci0000:00/0000:00:01.0/iommu/ivhd0/amd-iommu/features";

/// The SecureBoot efivarfs file: 4 attribute bytes (NV|BS|RT = 6), then the value.
fn secure_boot(on: bool) -> Vec<u8> {
    vec![6, 0, 0, 0, u8::from(on)]
}

/// `/proc/iomem` (kernel/resource.c, `%0*llx-%0*llx : %s`, children indented by two),
/// the bochs VGA's BAR 0 at fd000000-fdffffff as its `resource` file says.
fn iomem(fb_start: &str, fb_end: &str, zero: bool) -> Vec<u8> {
    let s = format!(
        "00000000-00000fff : Reserved\n\
         00001000-0009fbff : System RAM\n\
         80000000-afffffff : PCI Bus 0000:00\n\
         \x20 {fb_start}-{fb_end} : BOOTFB\n\
         fd000000-fdffffff : PCI Bus 0000:01\n\
         \x20 fd000000-fdffffff : 0000:01:00.0\n"
    );
    let s = if zero {
        // What a reader without CAP_SYS_ADMIN sees: every address zero.
        s.lines()
            .map(|l| {
                let (range, name) = l.split_once(" : ").unwrap();
                let indent = &range[..range.len() - range.trim_start().len()];
                format!("{indent}00000000-00000000 : {name}\n")
            })
            .collect()
    } else {
        s
    };
    text(&s)
}

fn cases() -> Vec<(&'static str, Vec<Op>)> {
    let kvm = || {
        vec![
            Edit(
                "proc/modules",
                "e1000e ",
                "kvm_amd 200704 0 - Live 0x0\nkvm 1388544 1 kvm_amd, Live 0x0\ne1000e ",
            ),
            File("dev/kvm", vec![]),
        ]
    };
    vec![
        (
            "no-intremap",
            vec![
                File("proc/interrupts", interrupts(false)),
                File(
                    "sys/devices/virtual/iommu/dmar0/intel-iommu/ecap",
                    text(ECAP_NO_IR),
                ),
                File(
                    "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
                    text("N\n"),
                ),
            ],
        ),
        (
            "no-intremap-allowed",
            vec![
                File("proc/interrupts", interrupts(false)),
                File(
                    "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
                    text("Y\n"),
                ),
            ],
        ),
        // The base has neither kvm loaded nor /dev/kvm (a TCG guest): no-kvm.
        ("no-kvm", vec![]),
        ("kvm-ok", kvm()),
        // The base's flags have `hypervisor`: in-vm; without it, none.
        ("in-vm-no", vec![Edit("proc/cpuinfo", " hypervisor", "")]),
        (
            "lockdown",
            vec![
                File(
                    "sys/kernel/security/lockdown",
                    text("none [integrity] confidentiality\n"),
                ),
                File(
                    "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
                    secure_boot(true),
                ),
            ],
        ),
        (
            "lockdown-no",
            vec![
                File(
                    "sys/kernel/security/lockdown",
                    text("[none] integrity confidentiality\n"),
                ),
                File(
                    "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
                    secure_boot(false),
                ),
            ],
        ),
        (
            "phys-bits",
            vec![
                File(
                    "sys/devices/virtual/iommu/dmar0/intel-iommu/cap",
                    text(CAP_39),
                ),
                Edit("proc/cpuinfo", "40 bits physical", "46 bits physical"),
            ],
        ),
        (
            "phys-bits-no",
            vec![
                File(
                    "sys/devices/virtual/iommu/dmar0/intel-iommu/cap",
                    text(CAP_48),
                ),
                Edit("proc/cpuinfo", "40 bits physical", "46 bits physical"),
            ],
        ),
        // A 52-bit CPU (EPYC 9004 `address sizes : 52 bits physical`) over an AMD
        // IOMMU whose host page table has four levels: 48-bit guests.
        (
            "phys-bits-amd",
            vec![
                File(AMD_FEATURES_PATH, text(AMD_FEATURES_HATS4)),
                Edit("proc/cpuinfo", "40 bits physical", "52 bits physical"),
            ],
        ),
        (
            "phys-bits-amd-no",
            vec![Edit("proc/cpuinfo", "40 bits physical", "52 bits physical")],
        ),
        (
            "framebuffer-no",
            vec![File("proc/iomem", iomem("80000000", "802fffff", false))],
        ),
        (
            "framebuffer-nonroot",
            vec![File("proc/iomem", iomem("fd000000", "fd2fffff", true))],
        ),
        (
            "device-busy",
            vec![
                Link(
                    "sys/class/drm/card0/device",
                    "../../../devices/pci0000:00/0000:00:02.0/0000:01:00.0",
                ),
                File("proc/4242/comm", text("Xorg\n")),
                Link("proc/4242/fd/0", "/dev/null"),
                Link("proc/4242/fd/14", "/dev/dri/card0"),
                File("proc/77/comm", text("sshd\n")),
                Link("proc/77/fd/3", "socket:[12345]"),
            ],
        ),
        (
            "device-busy-no",
            vec![
                Link(
                    "sys/class/drm/card0/device",
                    "../../../devices/platform/simple-framebuffer.0",
                ),
                File("proc/4242/comm", text("Xorg\n")),
                Link("proc/4242/fd/14", "/dev/dri/card0"),
            ],
        ),
    ]
}

fn build(base: &str, ops: &[Op], dir: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(repo().join(base))
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
    for op in ops {
        match op {
            File(p, bytes) => {
                let p = dir.join(p);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, bytes).unwrap();
            }
            Link(p, target) => {
                let p = dir.join(p);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(target, p).unwrap();
            }
            Edit(p, from, to) => {
                let p = dir.join(p);
                let t = std::fs::read_to_string(&p).unwrap();
                assert!(t.contains(from), "{} lacks {from:?}", p.display());
                std::fs::write(p, t.replace(from, to)).unwrap();
            }
        }
    }
}

fn golden(case: &str) -> PathBuf {
    repo()
        .join("tests/golden/host-findings")
        .join(format!("{case}.check.json"))
}

/// The codes of every finding, host and device.
fn codes(v: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |f: &serde_json::Value| {
        for x in f.as_array().unwrap() {
            out.push(x["code"].as_str().unwrap().to_string());
        }
    };
    push(&v["host"]["findings"]);
    for d in v["devices"].as_array().unwrap() {
        push(&d["findings"]);
    }
    out
}

/// What each case must and must not show (derived from the fact it changes).
fn expect(case: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match case {
        "no-intremap" | "no-intremap-allowed" => (&["no-intremap"], &[]),
        "no-kvm" => (&["no-kvm", "in-vm"], &[]),
        "kvm-ok" => (&[], &["no-kvm"]),
        "in-vm-no" => (&[], &["in-vm"]),
        "lockdown" => (&["lockdown"], &[]),
        "lockdown-no" => (&[], &["lockdown"]),
        "phys-bits" | "phys-bits-amd" => (&["phys-bits"], &[]),
        "phys-bits-no" | "phys-bits-amd-no" => (&[], &["phys-bits"]),
        "framebuffer-nonroot" => (&["framebuffer"], &[]),
        "framebuffer-no" => (&[], &["framebuffer"]),
        "device-busy" => (&["device-busy"], &[]),
        "device-busy-no" => (&[], &["device-busy"]),
        _ => panic!("no expectation for {case}"),
    }
}

#[test]
fn each_host_finding_and_its_negative_twin() {
    for (case, ops) in cases() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        build(base(case), &ops, &root);
        let o = passthru(&root, &ARGS);
        assert!(o.code <= 2, "{case}: {}", o.stderr);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        let got = codes(&v);
        let (want, not) = expect(case);
        for w in want {
            assert!(got.iter().any(|g| g == w), "{case}: {w} missing in {got:?}");
        }
        for n in not {
            assert!(
                !got.iter().any(|g| g == n),
                "{case}: {n} present in {got:?}"
            );
        }
        let pretty = serde_json::to_string_pretty(&v).unwrap() + "\n";
        if bless() {
            std::fs::create_dir_all(golden(case).parent().unwrap()).unwrap();
            std::fs::write(golden(case), &pretty).unwrap();
        } else {
            let want: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(golden(case)).unwrap()).unwrap();
            assert_eq!(
                want, v,
                "{case}: differs from its golden (bless after review)"
            );
        }
        // The snapshot of the case root replays the same check.
        let snap = tmp.path().join("snap");
        let s = passthru(&root, &["snapshot", snap.to_str().unwrap()]);
        assert_eq!(s.code, 0, "{case} snapshot: {}", s.stderr);
        let r = passthru(&snap, &ARGS);
        assert_eq!(
            r.stdout, o.stdout,
            "{case}: the snapshot replays differently"
        );
    }
}

/// A snapshot keeps only the holders the model keeps: the other processes, and the
/// holder's other open files, are not copied.
#[test]
fn snapshot_keeps_only_the_holders() {
    let (_, ops) = cases()
        .into_iter()
        .find(|(c, _)| *c == "device-busy")
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    build(BASE, &ops, &root);
    let snap = tmp.path().join("snap");
    let s = passthru(&root, &["snapshot", snap.to_str().unwrap()]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(
        std::fs::read_link(snap.join("proc/4242/fd/14")).unwrap(),
        Path::new("/dev/dri/card0")
    );
    assert!(!snap.join("proc/4242/fd/0").exists());
    assert!(std::fs::symlink_metadata(snap.join("proc/4242/fd/0")).is_err());
    assert!(std::fs::symlink_metadata(snap.join("proc/77")).is_err());
    assert_eq!(
        std::fs::read_to_string(snap.join("proc/4242/comm")).unwrap(),
        "Xorg\n"
    );
}

/// /proc/interrupts and /proc/iomem are big: a snapshot keeps only the lines the
/// model uses (the header and one line per interrupt chip; the first line and the
/// framebuffers).
#[test]
fn snapshot_keeps_only_the_needed_lines() {
    let ops = vec![
        File("proc/interrupts", interrupts(true)),
        File("proc/iomem", iomem("fd000000", "fd2fffff", false)),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    build(BASE, &ops, &root);
    let snap = tmp.path().join("snap");
    assert_eq!(
        passthru(&root, &["snapshot", snap.to_str().unwrap()]).code,
        0
    );
    let irq = std::fs::read_to_string(snap.join("proc/interrupts")).unwrap();
    // Header, IR-IO-APIC, IR-PCI-MSIX, IR-PCI-MSI: 4 of the 7 lines.
    assert_eq!(irq.lines().count(), 4, "{irq}");
    assert!(irq.contains("IR-PCI-MSIX-0000:00:1f.2") && !irq.contains("rtc0"));
    let mem = std::fs::read_to_string(snap.join("proc/iomem")).unwrap();
    assert!(
        mem.contains("BOOTFB") && !mem.contains("System RAM"),
        "{mem}"
    );
}

/// The findings QEMU can produce, on real captures (tests/vm, `passthru snapshot` in a
/// 6.12 guest): `intremap=off` on the command line of the Intel vIOMMU guest
/// (`vm-intel-vga-audio-intremap-off`: no `IR-` chip in /proc/interrupts) against the
/// same QEMU with remapping on (`vm-intel-vga-bootfb-off`: `IR-IO-APIC`); and a VESA
/// boot framebuffer in the std VGA's BAR 0 (`vm-intel-vga-bootfb`, booted with
/// `vga=0x317`) against the same guest without `vga=` (`vm-intel-vga-bootfb-off`).
/// They replace the cases built from the kernel's formats for these facts.
#[test]
fn real_captures_show_no_intremap_phys_bits_and_the_framebuffer_their_twins_do_not() {
    let fixture = |n: &str| repo().join("tests/fixtures").join(n);
    let check = |root: &str, args: &[&str]| {
        let mut a = vec!["check", "--json"];
        a.extend(args);
        let o = passthru(&fixture(root), &a);
        assert!(o.code <= 1, "{root}: {}", o.stderr);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        v
    };
    let find = |v: &serde_json::Value, code: &str| -> Option<serde_json::Value> {
        let host = v["host"]["findings"].as_array().unwrap().iter();
        let dev = v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["findings"].as_array().unwrap().iter());
        host.chain(dev).find(|f| f["code"] == code).cloned()
    };
    let v = check(
        "vm-intel-vga-audio-intremap-off",
        &["0000:01:00.0", "0000:01:00.1"],
    );
    let f = find(&v, "no-intremap").expect("no-intremap on the intremap=off guest");
    assert_eq!(f["severity"], "fail");
    let ev = f["evidence"].to_string();
    assert!(
        ev.contains("proc/cmdline: intremap=off") && ev.contains("no IR- chip"),
        "{ev}"
    );
    let on = check("vm-intel-vga-bootfb-off", &["0000:00:05.0"]);
    assert!(find(&on, "no-intremap").is_none());
    assert!(find(&on, "framebuffer").is_none());
    // The same captures show a real phys-bits: QEMU's intel-iommu defaults to a 39-bit
    // guest address width (MGAW) under a TCG CPU with 40 physical address bits; QEMU's
    // amd-iommu walks six levels (64 bits) and gives none.
    let f = find(&v, "phys-bits").expect("phys-bits on QEMU's 39-bit VT-d");
    let ev = f["evidence"].to_string();
    assert!(
        ev.contains("40 bits physical") && ev.contains("(MGAW 39 bits)"),
        "{ev}"
    );
    let amd = check("vm-amd-vga-audio-efr", &["0000:01:00.0", "0000:01:00.1"]);
    assert!(find(&amd, "phys-bits").is_none());
    let fb = check("vm-intel-vga-bootfb", &["0000:00:05.0"]);
    let f = find(&fb, "framebuffer").expect("framebuffer on the vga=0x317 guest");
    let ev = f["evidence"].to_string();
    assert!(
        ev.contains("fd000000-fdffffff : vesafb") && ev.contains("BAR 0 0xfd000000-0xfdffffff"),
        "{ev}"
    );
}
