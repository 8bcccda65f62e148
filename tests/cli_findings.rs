//! The per-device findings of docs/findings.md on their fixture roots
//! (tests/fixtures/finding-*, built by tests/fixtures/make-finding-roots.sh from
//! real captures): each finding appears on its root and not on its negative twin;
//! `unknown-device` is a usage error (exit 2) in the CLI and an error in the library.

#[path = "cli_list_check_support/mod.rs"]
mod cli_common;

use cli_common::*;
use passthru_iommu_groups::{check_bdfs, Host};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// The codes `passthru check --json ARGS` reports for `bdf` on `root`.
fn codes(root: &Path, args: &[&str], bdf: &str) -> Vec<String> {
    let mut argv = vec!["check", "--json"];
    argv.extend(args);
    let o = passthru(root, &argv);
    assert!(
        o.code == 0 || o.code == 1,
        "{}: {}",
        root.display(),
        o.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let d = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["bdf"] == bdf)
        .unwrap_or_else(|| panic!("{bdf} not checked on {}", root.display()));
    d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// Each finding on its root, and not on its twin (the same host with the one fact
/// that matters left as it was, or set the harmless way).
#[test]
fn each_finding_appears_on_its_root_and_not_on_its_twin() {
    let rootports = ["0000:01:00.0", "0000:02:00.0"];
    // (code, root, twin, check args, device)
    let cases: [(&str, &str, &str, &[&str], &str); 9] = [
        (
            "unresponsive",
            "finding-unresponsive",
            "finding-unresponsive-twin",
            &[],
            "0000:05:00.0",
        ),
        (
            "not-endpoint",
            "finding-not-endpoint",
            "finding-not-endpoint",
            &["0000:00:00.0", "0000:00:01.2", "0000:0b:00"],
            "0000:00:01.2",
        ),
        (
            "direct-mapping",
            "finding-direct-mapping",
            "finding-direct-mapping-twin",
            &rootports,
            "0000:02:00.0",
        ),
        (
            "d3cold",
            "finding-d3cold",
            "finding-d3cold-twin",
            &rootports,
            "0000:02:00.0",
        ),
        // The same slots without ACPI power resources (_PR3) on their root ports:
        // the platform cannot cut their power, so no D3cold.
        (
            "d3cold",
            "finding-d3cold",
            "finding-d3cold-no-pr3",
            &rootports,
            "0000:02:00.0",
        ),
        (
            "bar-window",
            "finding-bar-window",
            "finding-bar-window-twin",
            &[],
            "0000:0b:00.0",
        ),
        (
            "msix-relocation",
            "finding-msix-relocation",
            "vm-amd-rootports",
            &rootports,
            "0000:02:00.0",
        ),
        (
            "no-display-output",
            "finding-no-display-output",
            "scenario-amd",
            &[],
            "0000:05:00.0",
        ),
        (
            "no-display-output",
            "finding-no-display-output-laptop",
            "scenario-amd",
            &[],
            "0000:05:00.0",
        ),
    ];
    for (code, root, twin, args, bdf) in cases {
        let got = codes(&fixture(root), args, bdf);
        assert!(got.iter().any(|c| c == code), "{root} {bdf}: {got:?}");
        // not-endpoint's twin is the endpoint checked in the same request.
        let twin_bdf = if code == "not-endpoint" {
            "0000:0b:00.0"
        } else {
            bdf
        };
        let got = codes(&fixture(twin), args, twin_bdf);
        assert!(!got.iter().any(|c| c == code), "{twin} {twin_bdf}: {got:?}");
    }
    // The NVMe next to the e1000e has FLR: no d3cold though it may power off too.
    let got = codes(&fixture("finding-d3cold"), &rootports, "0000:01:00.0");
    assert!(!got.iter().any(|c| c == "d3cold"), "{got:?}");
    // The laptop's boot display is not its discrete GPU.
    let got = codes(
        &fixture("finding-no-display-output-laptop"),
        &[],
        "0000:0b:00.0",
    );
    assert!(!got.iter().any(|c| c == "no-display-output"), "{got:?}");
}

/// A VF's vendor and device id registers read ffff by design (PCIe SR-IOV): with a
/// `physfn` link the same config bytes are no `unresponsive` finding.
#[test]
fn a_vf_reading_ffff_ids_is_not_unresponsive() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("r");
    let ok = std::process::Command::new("cp")
        .args(["-a"])
        .arg(fixture("scenario-amd"))
        .arg(&root)
        .status()
        .unwrap();
    assert!(ok.success());
    let dev = root.join("sys/bus/pci/devices/0000:05:00.0");
    let dir = std::fs::canonicalize(&dev).unwrap();
    let mut cfg = std::fs::read(dir.join("config")).unwrap();
    cfg[..4].copy_from_slice(&[0xff; 4]);
    std::fs::write(dir.join("config"), &cfg).unwrap();
    let got = codes(&root, &["0000:05:00.0"], "0000:05:00.0");
    assert!(got.iter().any(|c| c == "unresponsive"), "{got:?}");
    // Now a VF of 05:00.1 (a link as sysfs makes it: ../0000:05:00.1).
    std::os::unix::fs::symlink("../0000:05:00.1", dir.join("physfn")).unwrap();
    let got = codes(&root, &["0000:05:00.0"], "0000:05:00.0");
    assert!(!got.iter().any(|c| c == "unresponsive"), "{got:?}");
}

/// An address or id the host does not have: exit 2 and a message naming it and the
/// code, with or without --json; the library says so too instead of an empty
/// report that would read as a pass.
#[test]
fn unknown_device_is_a_usage_error() {
    let root = fixture("scenario-amd");
    for args in [
        &["check", "0000:7f:00.0"][..],
        &["check", "--json", "7f:00.0"],
        &["check", "0b:00", "10de:ffff"],
        &["check", "0000:0b:07"],
        &["config", "7f:00"],
    ] {
        let o = passthru(&root, args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        // Under --json the error is a JSON object on stdout, its kind the code.
        let said = if args.contains(&"--json") {
            let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
            assert_eq!(v["error"]["kind"], "unknown-device", "{args:?}");
            o.stdout.clone()
        } else {
            o.stderr.clone()
        };
        assert!(said.contains("unknown-device"), "{args:?}: {}", said);
        if !args.contains(&"--json") {
            assert!(o.stdout.is_empty(), "{args:?}: {}", o.stdout);
        }
        let named = args.last().unwrap();
        assert!(said.contains(named), "{args:?}: {said}");
    }
    let host = Host::load(&root).unwrap();
    let here = "0000:0b:00.0".parse().unwrap();
    let gone = "0000:7f:00.0".parse().unwrap();
    let e = check_bdfs(&host, &[here, gone]).unwrap_err();
    assert_eq!(e.code(), Some("unknown-device"));
    assert!(e.to_string().contains("0000:7f:00.0"), "{e}");
    assert_eq!(check_bdfs(&host, &[here]).unwrap().devices.len(), 2);
}

/// `passthru config`'s dry run for each configuration fix, on the finding's root and on
/// its twin: golden files under tests/golden/config-findings (rewritten with
/// `PASSTHRU_BLESS=1 cargo test --test cli_findings`), and the fix's lines asserted
/// present on the root and absent on the twin.
#[test]
fn config_writes_each_fix_only_where_its_finding_is() {
    let guests = [
        "--guest", "proxmox", "--guest", "qemu", "--guest", "libvirt",
    ];
    // (root, twin, slots, lines the fix adds)
    let cases: [(&str, &str, &[&str], &[&str]); 3] = [
        (
            "finding-d3cold",
            "finding-d3cold-twin",
            &["01:00", "02:00"],
            &["options vfio-pci disable_idle_d3=1"],
        ),
        (
            "finding-bar-window",
            "finding-bar-window-twin",
            &["0b:00"],
            &[
                // Proxmox, QEMU, libvirt: 32 GiB + 2 MiB of BARs, a 128 GiB window.
                "args: -fw_cfg name=opt/ovmf/X-PciMmio64Mb,string=131072",
                "  -fw_cfg name=opt/ovmf/X-PciMmio64Mb,string=131072",
                "<qemu:arg value='name=opt/ovmf/X-PciMmio64Mb,string=131072'/>",
            ],
        ),
        (
            "finding-msix-relocation",
            "vm-amd-rootports",
            &["02:00"],
            &[
                // BARs 0, 1, 2 (I/O) and 3 are used: QEMU gets BAR 5.
                "args: -set device.hostpci0.x-msix-relocation=bar5",
                "-device vfio-pci,host=0000:02:00.0,bus=pt-rp1,addr=00.0,x-msix-relocation=bar5",
                "<alias name='ua-pt-0000-02-00-0'/>",
                "<qemu:arg value='device.ua-pt-0000-02-00-0.x-msix-relocation=bar5'/>",
            ],
        ),
    ];
    let dir = repo().join("tests/golden/config-findings");
    for (root, twin, slots, lines) in cases {
        for (name, present) in [(root, true), (twin, false)] {
            let mut argv = vec!["config"];
            argv.extend(slots);
            argv.extend(guests);
            let o = passthru(&fixture(name), &argv);
            assert_eq!(o.code, 0, "{name}: {}", o.stderr);
            for l in lines {
                assert_eq!(
                    o.stdout
                        .lines()
                        .any(|x| x.trim_start_matches('+').trim() == l.trim()),
                    present,
                    "{name}: {l:?} in\n{}",
                    o.stdout
                );
            }
            let golden = dir.join(format!("{root}{}.txt", if present { "" } else { ".twin" }));
            if bless() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&golden, &o.stdout).unwrap();
            } else {
                let want = std::fs::read_to_string(&golden)
                    .unwrap_or_else(|_| panic!("{} missing: bless", golden.display()));
                assert_eq!(
                    want,
                    o.stdout,
                    "{} differs (bless after review)",
                    golden.display()
                );
            }
        }
    }
}
